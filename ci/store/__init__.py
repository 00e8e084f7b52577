"""The store: what hilci remembers across commits and machines (stage cache, engines, measurement history).

One URL names it (`store:` in hilci.yaml, `HILCI_STORE` overrides; unset = the repository's `.hilci-cache`).
Layout under that URL:
- `blobs/<sha256>`: content-addressed files, immutable, verified on every read;
- `entries/<stage>/<key>.json`: a passed stage's record (key parts, outputs with their blob digests, the commit and
  build that made it), written after its blobs, so a reader never sees half an entry;
- `engines/<key>.json`: a built engine (and TensorRT timing cache) by runtime version, board or GPU and ONNX sha256;
- `history/<branch>/<board>/<time>-<commit>-<stage>.json`: one record per run and stage, with its measurements.
"""
