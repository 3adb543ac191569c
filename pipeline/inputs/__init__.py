"""Where pixels come from: folders of images, pairing, decoding, Zarr stacks, ingest stores."""
