/**
 * An images fixture folder (`pixel_values.safetensors`, the image files): every
 * image decoded to the RGB bytes PIL's `convert("RGB")` gives, and preprocessed
 * (PIL bicubic resize, rescale, normalize) at every stored size within 1e-6.
 */
import { join } from 'node:path';
import { ImageProcessor } from '@blip2/processor';
import { decodeImageNode } from '@blip2/processor/node';
import { tensor } from '@blip2/tensor';
import { SdkError } from '../errors.js';
import { openSafetensorsFile } from './files.js';
import { type ParityReport, PIXEL_TOLERANCE, ReportBuilder } from './report.js';

const PIL_KEY = /^(.+)\/pil\/(\d+)$/;

export async function imagesParity(dir: string): Promise<ParityReport> {
  const report = new ReportBuilder('images', dir);
  const reference = await openSafetensorsFile(join(dir, 'pixel_values.safetensors'));
  try {
    const names = [...reference.tensors.keys()]
      .filter((k) => k.endsWith('/decoded_rgb'))
      .map((k) => k.slice(0, -'/decoded_rgb'.length));
    if (!names.length) {
      throw new SdkError(
        'E_INPUT',
        `${join(dir, 'pixel_values.safetensors')}: no '<image>/decoded_rgb' tensor, so no image to check`,
      );
    }
    for (const name of names) {
      const image = await decodeImageNode(join(dir, name), name);
      const expected = await reference.read(`${name}/decoded_rgb`);
      const got = tensor('uint8', [image.height, image.width, 3], image.data);
      report.tensor(name, 'decoded_rgb', got, expected, 0);
      for (const key of reference.tensors.keys()) {
        const m = PIL_KEY.exec(key);
        if (!m || m[1] !== name) continue;
        const size = Number(m[2]);
        const processor = new ImageProcessor({ size: { height: size, width: size } });
        report.tensor(
          name,
          `pil/${size}`,
          processor.preprocess([image]),
          await reference.read(key),
          PIXEL_TOLERANCE,
        );
      }
    }
  } finally {
    await reference.close();
  }
  return report.finish('none');
}
