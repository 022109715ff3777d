# Writes packages/processor/test/fixtures/cmyk/: CMYK JPEGs as Pillow saves them (Adobe APP14
# marker, inverted CMYK) and, beside each, `<name>.pil-rgb.png`: what Pillow's
# `Image.open(f).convert('RGB')` gives, the oracle the tests compare the Node decoder against.
# Run outside the tests with Debian's python3-pil (Pillow 9.4):
#   /usr/bin/python3 packages/processor/test/oracle/make-cmyk-cases.py
import os
import random

from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, '..', 'fixtures', 'cmyk')
images = os.path.join(here, '..', '..', '..', '..', 'tooling', 'fixtures', 'data', 'images')
os.makedirs(out, exist_ok=True)

random.seed(3)
noise = Image.new('CMYK', (23, 17))
px = noise.load()
for y in range(17):
    for x in range(23):
        px[x, y] = tuple(random.randint(0, 255) for _ in range(4))

ramp = Image.new('CMYK', (32, 8))
px = ramp.load()
for y in range(8):
    for x in range(32):
        px[x, y] = (x * 8, 255 - x * 8, y * 32, (x * y * 3) % 256)

photo = Image.open(os.path.join(images, 'photo_100x80.jpg')).convert('CMYK')

for name, image, quality in [('noise', noise, 95), ('ramp', ramp, 90), ('photo', photo, 85)]:
    path = os.path.join(out, f'{name}.jpg')
    image.save(path, quality=quality)
    reopened = Image.open(path)
    assert reopened.mode == 'CMYK' and reopened.info.get('adobe') is not None
    reopened.convert('RGB').save(os.path.join(out, f'{name}.pil-rgb.png'))
    print(name, reopened.size)
