import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { backendInfo, initBackend, BACKEND_ENV } from '../../src/backend';
import { loadSam2, portCheckpoint } from '../../src/index';
import { writeFormulaCheckpoint } from '../helpers/torch_writer';

describe("backend: the user's choice survives loadSam2", () => {
  it('a backend set with tf.setBackend survives loadSam2', async function () {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sam2-backend-'));
    const env = process.env[BACKEND_ENV];
    try {
      writeFormulaCheckpoint(path.join(tmp, 'm.pt'));
      portCheckpoint(path.join(tmp, 'm.pt'), path.join(tmp, 'w'));
      delete process.env[BACKEND_ENV];
      await tf.setBackend('cpu');
      const model = await loadSam2(path.join(tmp, 'w'), { imageSize: 128 });
      expect(tf.getBackend()).to.equal('cpu');
      expect(backendInfo()).to.include({ tfBackend: 'cpu', userSet: true });
      model.dispose();
    } finally {
      if (env !== undefined) process.env[BACKEND_ENV] = env;
      await initBackend('wasm');
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    expect(tf.getBackend()).to.equal('wasm');
  });
});
