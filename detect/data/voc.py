"""Pascal VOC datasets as checked COCO-format dicts: `Annotations/<id>.xml`, `JPEGImages/`, and the ids of each split
in `ImageSets/Main/<split>.txt` (the layout of VOCdevkit/VOC2012 and of labelling tools' VOC exports).

supervision reads each file's boxes (`<bndbox>`, 1-based pixel corners, as the devkit and Detectron2 read them).
Its folder reader (`DetectionDataset.from_pascal_voc`) is not used: it reads no ImageSets split, decodes every image
to learn its size, numbers the classes in the order it meets them (train and val could differ) and drops
`difficult`. Here a `difficult` box becomes a crowd box (left out of training, ignored by the COCO evaluation, as
VOC's own evaluation ignores it); a file that cannot be read skips its image, counted by kind.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from supervision.dataset.formats.pascal_voc import detections_from_xml_obj

from detect.data.checks import MESSAGES, CheckReport, check_coco, image_size
from detect.data.labels import Label, coco_dataset, image_entry
from detect.utils.errors import DetectError

VOC_MESSAGES = MESSAGES | {
    "no_annotation_file": "ids of the split have no Annotations/<id>.xml: skipped",
    "bad_xml": "annotation files are not Pascal VOC XML (unreadable, or an object without name or numeric "
               "bndbox): their images skipped",
    "unknown_class": "objects name a class that data.classes does not list: skipped",
}


def split_ids(root: Path, split: str) -> list[str]:
    """The image ids of ImageSets/Main/<split>.txt (the first word of each line)."""
    path = root / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise DetectError(f"{path} does not exist; set data.root to a Pascal VOC folder (Annotations/, JPEGImages/, "
                          "ImageSets/Main/<split>.txt) or the split's name (data.train_split / data.val_split)")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DetectError(f"{path} lists no image id; write one id (the name of Annotations/<id>.xml) per line")
    return ids


def _parse(path: Path) -> ElementTree.Element | None:
    try:
        return ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError):
        return None


def voc_class_names(root: str | Path, splits: Sequence[str]) -> list[str]:
    """The sorted names of every object in the splits' annotation files (those that can be read)."""
    names = set()
    for split in splits:
        for image_id in split_ids(Path(root), split):
            xml = _parse(Path(root) / "Annotations" / f"{image_id}.xml")
            names.update(name.text for name in (xml.findall("object/name") if xml is not None else []) if name.text)
    return sorted(names)


def read_objects(xml: ElementTree.Element, size: tuple[int, int], classes: list[str],
                 report: CheckReport, where: str) -> list[Label] | None:
    """The labels of one annotation file (`difficult` ones crowd), objects of other classes skipped and counted;
    None, counted, when supervision cannot read its boxes."""
    try:
        detections, _ = detections_from_xml_obj(xml, classes, size)
    except ValueError as error:
        report.add("bad_xml", f"{where}: {error}")
        return None
    labels = []
    for obj, (x1, y1, x2, y2), class_id in zip(xml.findall("object"), detections.xyxy.tolist(),
                                                detections.class_id.tolist()):
        if class_id >= len(classes):
            report.add("unknown_class", f"{where}: {obj.findtext('name')}")
            continue
        labels.append((class_id, [x1, y1, x2 - x1, y2 - y1], (obj.findtext("difficult") or "0").strip() == "1"))
    return labels


def read_voc_split(root: str | Path, split: str, classes: Sequence[str],
                   on_bad_image: str = "skip") -> tuple[dict[str, Any], CheckReport]:
    """`split` of a Pascal VOC folder as a COCO-format dict (category id = index in `classes` + 1, file names under
    JPEGImages/) after `check_coco`, and the report of both."""
    root = Path(root)
    ids = split_ids(root, split)
    image_dir = root / "JPEGImages"
    report = CheckReport(str(root / "ImageSets" / "Main" / f"{split}.txt"), messages=VOC_MESSAGES)
    entries, labels = [], []
    for image_id in ids:
        path = root / "Annotations" / f"{image_id}.xml"
        if not path.is_file():
            report.add("no_annotation_file", str(path))
            continue
        xml = _parse(path)
        if xml is None:
            report.add("bad_xml", f"{path}: not XML")
            continue
        file_name = (xml.findtext("filename") or "").strip() or f"{image_id}.jpg"
        size = image_size(image_dir / file_name)
        image_labels = [] if isinstance(size, str) else read_objects(xml, size, list(classes), report, str(path))
        if image_labels is not None:  # an image whose file is bad goes on to check_coco, which names the problem
            entries.append(image_entry(len(entries) + 1, file_name, size))
            labels.append(image_labels)
    return check_coco(coco_dataset(classes, entries, labels), report.path, image_dir, on_bad_image, report)
