"""Face detection on top of any executor: Tiny-Face templates, box coding (eq. 3), NMS,
image pyramid, FDDB / WIDER readers, AP metrics, the Viola-Jones baseline, drawing."""
