"""Video data: decoding, sampling, transforms, datasets."""
