"""The store: what hilci remembers across commits and machines (stage cache, engines, measurement history).

One URL names it (`store:` in hilci.yaml, `HILCI_STORE` overrides; unset = the repository's `.hilci-cache`).
Layout under that URL:
- `blobs/<sha256>`: content-addressed files, immutable, verified on every read;
- `entries/<stage>/<key>.json`: a passed stage's record (key parts, outputs with their blob digests, the commit and
  build that made it), written after its blobs, so a reader never sees half an entry;
- `engines/<key>.json`: a built engine (and TensorRT timing cache) by runtime version, board or GPU and ONNX sha256;
- `history/<branch>/<board>/<time>-<commit>-<stage>.json`: one record per run and stage, with its measurements.

Modules, one job each: `backend` (the URL's files, with deadlines), `keys` (what a stage's key is made of),
`cache` (entries: look up, restore, save, drop), `runhistory` (this run's records), `history` (the record format
and reading the index), `gates` (judging a record against its baseline), `trust` (who may write what),
`session` (one run's cache, records and gates over one opened store, from the typed hilci.yaml), `engines`, `gc`,
`plan`, `stagerun` (`hilci stage` with the cache), `cli`.
"""
