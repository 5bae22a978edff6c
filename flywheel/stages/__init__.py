"""The DVC stages of `dvc.yaml`: each a small script reading its own section of params.yaml."""
