/**
 * Stands in for `fs` and `path` in the browser build: the only code paths that reach them read
 * files from disk (a local weights folder, a directory of video frames), which a page cannot do.
 */
import { Sam2Error } from '../errors';

function unavailable(): never {
  throw new Sam2Error(
    'INPUT',
    'Files on disk cannot be read in a browser: pass a URL (weights folder, image) or image objects (video frames).',
  );
}

export const readFileSync = unavailable;
export const existsSync = unavailable;
export const statSync = unavailable;
export const readdirSync = unavailable;
export const join = unavailable;
export const sep = '/';
export default { readFileSync, existsSync, statSync, readdirSync, join, sep };
