/**
 * The resource limits of image inputs, one place for every decoder (sharp, our BMP reader,
 * browsers): what a hostile or broken file may cost before it is refused.
 */

/**
 * Pillow's decompression-bomb threshold: `Image.open` raises `DecompressionBombError` above
 * twice `Image.MAX_IMAGE_PIXELS` (1024 * 1024 * 1024 // 4 // 3 = 89,478,485). An image the
 * reference pipeline refuses is refused here too, whichever decoder reads it.
 */
export const MAX_IMAGE_PIXELS = 2 * Math.floor((1024 * 1024 * 1024) / 4 / 3);

/**
 * The largest encoded image file read (bytes). Pillow has no such cap, but a photo of the
 * pixel cap above is a few hundred MB at most as PNG; the cap keeps `/dev/zero`-like inputs
 * and mistaken paths (a video, a checkpoint) from being read into memory.
 */
export const MAX_IMAGE_FILE_BYTES = 512 * 1024 * 1024;
