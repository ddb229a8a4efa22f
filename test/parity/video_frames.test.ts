import { expect } from 'chai';
import { caseTensor, expectClose, fixturePath, nhwcToNchw } from '../helpers';
import { readImage } from '../../src/predictor/image_input';
import { pilResizeBicubic, preprocessVideoFrame } from '../../src/predictor/video_frames';

describe('video frame preprocessing (PIL bicubic resize, as the reference video loader)', () => {
  it('reproduces the reference frame0_input from the PNG twin of frame 0', async () => {
    const x = preprocessVideoFrame(await readImage(fixturePath('videos/bedroom/00000.png')), 1024);
    const ref = caseTensor('video_bedroom', 'frame0_input');
    const r = expectClose('frame0_input', nhwcToNchw(x.dataSync(), 1, 1024, 1024, 3), ref.data, 1e-5, ref.stats.std);
    x.dispose();
    expect(r.maxAbs).to.be.below(1e-5);
  });

  it('keeps pixels when the size does not change and averages when downscaling', () => {
    const img = { data: Uint8Array.from({ length: 4 * 2 * 3 }, (_, i) => (i * 17) % 256), width: 4, height: 2 };
    expect(Array.from(pilResizeBicubic(img, 4, 2).data)).to.deep.equal(Array.from(img.data));
    const flat = { data: new Uint8Array(8 * 8 * 3).fill(77), width: 8, height: 8 };
    expect(Array.from(pilResizeBicubic(flat, 3, 5).data).every((v) => v === 77)).to.equal(true);
  });
});
