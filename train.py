"""Train or evaluate a Faster R-CNN from the Hydra configs in configs/ (see README.md): `python -m detect train`."""

from detect.cli import train

if __name__ == "__main__":
    train()
