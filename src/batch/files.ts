/**
 * The file side of batch runs: finding images under the inputs, mapping each to its output
 * path, atomic JSON writes, and telling a complete output from a missing or partial one.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Sam2Error } from '../errors';

/** Extensions searched for in input directories (any case). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png'] as const;

/** One image of a batch. */
export interface BatchImage {
  /** Path of the image file as found (input directory joined with relPath). */
  file: string;
  /** Path relative to its input directory (the basename for a file input), `/`-separated. */
  relPath: string;
}

function isImageName(name: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(path.extname(name).toLowerCase());
}

/**
 * Images under `inputs` (files, and directories searched recursively), in input order and
 * sorted by path within a directory. Two images that would write the same output (a.jpg
 * and a.png side by side, or the same relative path under two inputs) are an INPUT error.
 */
export function findImages(inputs: string[]): BatchImage[] {
  const out: BatchImage[] = [];
  for (const input of inputs) {
    let st: fs.Stats;
    try {
      st = fs.statSync(input);
    } catch {
      throw new Sam2Error('INPUT', `Input "${input}" does not exist: give image files or directories.`);
    }
    if (st.isDirectory()) {
      const seen = new Set<string>(); // real paths, so a symlink loop ends
      const walk = (dir: string, rel: string) => {
        const real = fs.realpathSync(dir);
        if (seen.has(real)) return;
        seen.add(real);
        const names = fs.readdirSync(dir).sort();
        for (const name of names) {
          const full = path.join(dir, name);
          const r = rel ? `${rel}/${name}` : name;
          let s: fs.Stats;
          try {
            s = fs.statSync(full);
          } catch {
            continue; // a dangling symlink
          }
          if (s.isDirectory()) walk(full, r);
          else if (s.isFile() && isImageName(name)) out.push({ file: full, relPath: r });
        }
      };
      walk(input, '');
    } else {
      // a file named on the command line is taken whatever its extension; decoding tells
      out.push({ file: input, relPath: path.basename(input) });
    }
  }
  const byOutput = new Map<string, BatchImage>();
  for (const img of out) {
    const key = jsonRelPath(img.relPath);
    const other = byOutput.get(key);
    if (other) {
      throw new Sam2Error(
        'INPUT',
        `"${other.file}" and "${img.file}" would both write ${key}: rename one or run them with separate --out-dir.`,
      );
    }
    byOutput.set(key, img);
  }
  return out;
}

/** `sub/a.jpg` -> `sub/a.json`. */
export function jsonRelPath(relPath: string): string {
  const ext = path.posix.extname(relPath);
  return `${ext ? relPath.slice(0, -ext.length) : relPath}.json`;
}

/** Where the annotations of `img` go under `outDir`. */
export function outputPath(outDir: string, img: BatchImage): string {
  return path.join(outDir, ...jsonRelPath(img.relPath).split('/'));
}

/**
 * Writes `text` to `file` through a temporary file in the same directory and a rename, so a
 * reader (or a resumed run) sees the old file or the whole new one, never a part.
 */
export function writeFileAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`,
  );
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, text);
      fs.fsyncSync(fd); // the data is on disk before the name points at it
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * True when `file` holds a whole SA-1B record for `relPath`. Writes are atomic, so this
 * mostly guards against files written by other tools or hand edits.
 */
export function isCompleteOutput(file: string, relPath: string): boolean {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return false;
  }
  const d = doc as { image?: { file_name?: unknown }; annotations?: unknown };
  return d?.image?.file_name === relPath && Array.isArray(d.annotations);
}
