"""Small helpers every layer uses, none of which knows about pipelines: typed settings and YAML files,
sha256 digests, retries with back-off, secrets kept out of text, git provenance, installed versions, optional
packages named by the extra that installs them."""
