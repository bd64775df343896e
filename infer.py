"""Detect on images, a folder, a glob, a video, a webcam or a stream, timing every stage (configs/infer.yaml):
`python -m detect infer`."""

from detect.cli import infer

if __name__ == "__main__":
    infer()
