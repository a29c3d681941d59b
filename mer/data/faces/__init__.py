"""Faces in a clip's selected frames: 68-point landmarks (iBUG 300-W order, 0-based), which face
(tracking), how many frames show it (coverage), and the landmarks crops are cut with
(registration).

Modules, one job each:

- `detection`: landmark providers (`data.regions.landmarks`): `dlib` (HOG detector, minimum
  score, one face followed through the clip or the original's most confident box per frame, then
  the 68-point predictor) and `annotated` (the synthetic generator's ground truth); `none`: no
  landmarks (region policies `fixed` and `none` with a whole-frame branch A need none).
- `tracking`: following one face through a clip's detections.
- `coverage`: frames with a face / frames selected, the longest filled run, gap filling.
- `registration`: per-frame or per-clip landmarks for the crop boxes (`data.faces.boxes`).
- `store`: the landmark cache shared by every data config that selects the same frames.

Landmarks are (x, y) pixel coordinates, float32 (T, 68, 2), NaN where no face was found.
"""

from mer.data.faces.coverage import Coverage, clip_landmarks, fill_missing, no_face_fallback
from mer.data.faces.detection import (
    INSTALL_HINT,
    N_POINTS,
    PREDICTOR_FILE,
    AnnotatedLandmarks,
    DlibLandmarks,
    FaceDetections,
    LandmarkProvider,
    best_face,
    detect_clip,
    get_provider,
    predictor_path,
)
from mer.data.faces.registration import crop_landmarks, reference_landmarks, resolve_boxes
from mer.data.faces.tracking import Detection, Track, follow, iou, most_confident

__all__ = [
    "INSTALL_HINT",
    "N_POINTS",
    "PREDICTOR_FILE",
    "AnnotatedLandmarks",
    "Coverage",
    "Detection",
    "DlibLandmarks",
    "FaceDetections",
    "LandmarkProvider",
    "Track",
    "best_face",
    "clip_landmarks",
    "crop_landmarks",
    "detect_clip",
    "fill_missing",
    "follow",
    "get_provider",
    "iou",
    "most_confident",
    "no_face_fallback",
    "predictor_path",
    "reference_landmarks",
    "resolve_boxes",
]
