"""Face detection on top of any executor: Tiny-Face templates, box coding (eq. 3), NMS,
image pyramid, FDDB / WIDER readers, AP metrics, the Viola-Jones baseline, drawing.

>>> from qsim.facedet import anchors, load_templates
>>> anchors(2, 2, 16, load_templates()).shape
(2, 2, 25, 4)
"""
from qsim.facedet.annotations import FaceDataset, FaceImage
from qsim.facedet.coding import anchors, assign, decode, decode_deltas, encode, pack_head, split_head
from qsim.facedet.detector import Detections, ScaleOutput, detect, detections_from_outputs, run_pyramid
from qsim.facedet.draw import draw_boxes, save_png
from qsim.facedet.fddb import ellipse_to_box, load_fddb
from qsim.facedet.metrics import DetectionEval, average_precision, evaluate, match_image
from qsim.facedet.nms import nms
from qsim.facedet.templates import load_templates
from qsim.facedet.viola_jones import ViolaJones
from qsim.facedet.wider import load_wider

__all__ = [
    "FaceDataset", "FaceImage", "anchors", "assign", "decode", "decode_deltas", "encode", "pack_head",
    "split_head", "Detections", "ScaleOutput", "detect", "detections_from_outputs", "run_pyramid",
    "draw_boxes", "save_png", "ellipse_to_box", "load_fddb", "DetectionEval", "average_precision",
    "evaluate", "match_image", "nms", "load_templates", "ViolaJones", "load_wider",
]
