"""Speed of the reader app, offscreen: slice stepping, case switching and start-up.

    .venv/bin/python benchmarks/bench_reader.py [--steps 300] [--switches 11] [--json]
                                                [--study-dir DIR]

Rows, all in one run on this machine:
- slice step of the full reading window at 512x512 (key press -> the image's viewport painted,
  slider and label with it), next to a bare pyqtgraph ImageItem's `setImage` -> painted, for the
  same slices in a view of the same size (target p95 under 10 ms);
- slice step at 256x256x32 in the single view and in the three views side by side (L), stepping
  the axial view, then the coronal one: key press -> every view shown has painted again (the
  stepped one its new slice, the other two their moved cursor marks; target p95 under 10 ms);
- case switch at 256x256x32 (the paper's MRNet/DUKE size) from pressing Next to the next case's
  image on screen: "preloaded" waits for the background read of the next case first (a reader
  spends seconds on a case), "at once" presses Next immediately (target under 150 ms);
- start-up: a fresh `python -m reader_app.cli.reader STUDY --screenshot PNG` process, whole
  (interpreter start to exit) and from the first import to the saved PNG, and whether torch or
  MONAI were imported (target under 2 s, none).
The studies are built with `studies.create.create_study` from synthetic head-CT phantoms in HU
(ellipsoids for scalp, skull, grey and white matter, ventricles), so they go through the same
normalisation and blinded case files as a real study.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEP_SHAPE = (32, 512, 512)
SWITCH_SHAPE = (32, 256, 256)
SPACING = {STEP_SHAPE: (3.0, 0.45, 0.45), SWITCH_SHAPE: (3.0, 0.9, 0.9)}
STEP_TARGET_MS, SWITCH_TARGET_MS, STARTUP_TARGET_S = 10.0, 150.0, 2.0

# (centre z, y, x; semi-axes z, y, x) in units of the half field of view, and HU.
HEAD = [
    ((0.0, 0.0, 0.0), (0.92, 0.86, 0.70), 40.0),      # scalp and soft tissue
    ((0.0, 0.0, 0.0), (0.88, 0.82, 0.66), 1100.0),    # skull
    ((0.0, 0.0, 0.0), (0.83, 0.77, 0.61), 38.0),      # grey matter
    ((0.05, 0.0, 0.0), (0.62, 0.60, 0.46), 27.0),     # white matter
    ((0.1, -0.05, -0.12), (0.30, 0.32, 0.07), 6.0),   # right lateral ventricle
    ((0.1, -0.05, 0.12), (0.30, 0.32, 0.07), 6.0),    # left lateral ventricle
    ((-0.2, 0.1, 0.0), (0.15, 0.10, 0.05), 6.0),      # third ventricle
    ((0.3, -0.45, 0.25), (0.12, 0.09, 0.09), 55.0),   # a small dense lesion
]


def head_phantom(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """A head-CT-like phantom in HU, canonical (D, H, W), its ellipsoids jittered per seed."""
    rng = np.random.default_rng(seed)
    z, y, x = (np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape)
    z, y, x = z[:, None, None], y[None, :, None], x[None, None, :]
    volume = np.full(shape, -1000.0, dtype=np.float32)
    # One size and position for the whole head, so its layers stay nested; the inner structures
    # move a little on their own.
    head_scale, head_shift = 1.0 + rng.uniform(-0.04, 0.04), rng.uniform(-0.03, 0.03, 3)
    for number, ((cz, cy, cx), (az, ay, ax), hu) in enumerate(HEAD):
        scale = head_scale * (1.0 + (rng.uniform(-0.06, 0.06) if number > 3 else 0.0))
        shift = head_shift + (rng.uniform(-0.03, 0.03, 3) if number > 3 else 0.0)
        inside = (((z - cz - shift[0]) / (az * scale)) ** 2
                  + ((y - cy - shift[1]) / (ay * scale)) ** 2
                  + ((x - cx - shift[2]) / (ax * scale)) ** 2) <= 1.0
        volume[inside] = hu
    # Tissue texture and scanner noise, so windows and slices look like an image, not a drawing.
    texture = gaussian_filter(rng.standard_normal(shape).astype(np.float32), (0.5, 2.0, 2.0))
    volume += 25.0 * texture + rng.normal(0.0, 3.0, shape).astype(np.float32)
    return np.round(volume).astype(np.int16)


def build_study(folder: Path, shape: tuple[int, int, int], n_cases: int, title: str) -> Path:
    """A CT study of head phantoms made with `create_study` (half 'real', half 'synthetic')."""
    from diffusion_core.io import Volume, canonical_affine, write_nifti
    from studies.create import create_study

    spacing = SPACING[shape]
    inputs = folder / f"inputs-{shape[1]}"
    for index in range(n_cases):
        source = "real" if index % 2 == 0 else "synthetic"
        volume = Volume(head_phantom(shape, index), spacing, canonical_affine(spacing), "CT")
        write_nifti(volume, inputs / source / f"phantom{index:03d}.nii.gz")
    made = create_study(folder / f"study-{shape[1]}", real=inputs / "real",
                        synthetic=inputs / "synthetic", modality="CT", seed=0, title=title)
    return made.folder


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """n, p50, p95 and max of timings in milliseconds."""
    values = np.asarray(samples_ms)
    return {"n": int(values.size), "p50_ms": float(np.percentile(values, 50)),
            "p95_ms": float(np.percentile(values, 95)), "max_ms": float(values.max())}


def open_window(study_folder: Path, reader: str | None):
    """A shown reading window over the study, its first case on screen."""
    from PySide6.QtWidgets import QApplication

    from reader_app.model.preview_store import PreviewStore
    from reader_app.model.session import ReadingSession
    from reader_app.widgets.main_window import ReaderWindow
    from studies.ratings import RatingStore
    from studies.study import Study

    study = Study.open(study_folder)
    store = RatingStore.open(study, reader) if reader else PreviewStore(study)
    window = ReaderWindow(ReadingSession(study, store), study.title, study.modality, study.viewer)
    window.show()
    QApplication.processEvents()
    window.wait_for_case()
    QApplication.processEvents()
    return window


def paint_counter(widget):
    """An event filter counting the Paint events `widget` receives (keep a reference to it)."""
    from PySide6.QtCore import QEvent, QObject

    class PaintCounter(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
            if event.type() == QEvent.Type.Paint:
                self.count += 1
            return False

    counter = PaintCounter()
    widget.installEventFilter(counter)
    return counter


def run_until(done, timeout_s: float = 10.0) -> None:
    """Run the event loop until `done()` is true; RuntimeError after `timeout_s`."""
    from PySide6.QtWidgets import QApplication

    deadline = time.perf_counter() + timeout_s
    while not done():
        if time.perf_counter() > deadline:
            raise RuntimeError("the window did not update within the time limit")
        QApplication.processEvents()


def until_painted(counter, before: int) -> None:
    """Run the event loop until the watched widget has painted again."""
    run_until(lambda: counter.count != before)


def sweep_key(i: int, total: int):
    """Down through all `total` slices, then up, and so on: every step changes the image."""
    from PySide6.QtCore import Qt

    return Qt.Key.Key_Down if (i // (total - 1)) % 2 == 0 else Qt.Key.Key_Up


def time_window_steps(window, steps: int) -> dict:
    """Key press -> every shown view's viewport painted again, in ms, over `steps` steps of the
    current plane, running the event loop as the app does (no forced repaint)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    viewer = window.viewer
    total = viewer.display.slice_total
    QTest.keyClick(window, Qt.Key.Key_Home)  # the sweep starts at slice 1, like the bare one
    QApplication.processEvents()
    counters = [paint_counter(plane.graphics.viewport())
                for plane in viewer.planes.values() if plane.live]
    samples = []
    for i in range(steps):
        before = [counter.count for counter in counters]
        start = time.perf_counter()
        QTest.keyClick(window, sweep_key(i, total))
        run_until(lambda b=before: all(c.count != n for c, n in zip(counters, b, strict=True)))
        samples.append((time.perf_counter() - start) * 1e3)
    return percentiles(samples)


def time_slice_steps(study_folder: Path, steps: int) -> tuple[dict, dict]:
    """Full window: key press -> image painted; bare ImageItem: setImage -> painted; in ms.

    Both run the event loop as the app does (no forced repaint), until the image's viewport
    has received its next Paint event.
    """
    import pyqtgraph as pg
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    window = open_window(study_folder, reader=None)
    viewer = window.viewer
    display = viewer.display
    total = display.slice_total
    full = time_window_steps(window, steps)

    volume, window_levels = display.volume, (display.window.low, display.window.high)
    bare_view = pg.GraphicsView()
    box = pg.ViewBox(lockAspect=True, invertY=True)
    bare_view.setCentralItem(box)
    item = pg.ImageItem(axisOrder="row-major")
    box.addItem(item)
    bare_view.resize(viewer.graphics.size())
    bare_view.show()
    item.setImage(volume[0], levels=window_levels, autoLevels=False)
    box.autoRange(padding=0.0)
    QApplication.processEvents()
    bare_counter = paint_counter(bare_view.viewport())
    bare = []
    index = 0
    for i in range(steps):
        index += 1 if sweep_key(i, total) == Qt.Key.Key_Down else -1
        index = min(max(index, 0), total - 1)
        before = bare_counter.count
        start = time.perf_counter()
        item.setImage(volume[index], levels=window_levels, autoLevels=False)
        until_painted(bare_counter, before)
        bare.append((time.perf_counter() - start) * 1e3)
    bare_view.close()
    window.close()
    return full, percentiles(bare)


def time_layout_steps(study_folder: Path, steps: int) -> dict[str, dict]:
    """Slice steps of one window in the single view, then (L) in the three views, stepping the
    axial plane and then (V) the coronal one."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from reader_app.model.windowing import Layout, Orientation

    window = open_window(study_folder, reader=None)
    display = window.viewer.display
    rows = {"single": time_window_steps(window, steps)}
    QTest.keyClick(window, Qt.Key.Key_L)
    QApplication.processEvents()
    if display.layout is not Layout.THREE:
        raise RuntimeError("the layout key did not show the three views")
    rows["three_axial"] = time_window_steps(window, steps)
    QTest.keyClick(window, Qt.Key.Key_V)
    QApplication.processEvents()
    if display.orientation is not Orientation.CORONAL:
        raise RuntimeError("the plane key did not make the coronal view current")
    rows["three_coronal"] = time_window_steps(window, steps)
    window.close()
    return rows


def time_case_switches(study_folder: Path, switches: int, wait_for_preload: bool) -> dict:
    """Next pressed -> the next case's image painted, in ms, over `switches` cases."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window = open_window(study_folder, reader="preloaded" if wait_for_preload else "at-once")
    session, viewer = window.session, window.viewer
    counter = paint_counter(viewer.graphics.viewport())
    # Paints counted when each new volume reached the view: the one after it shows the case.
    shown_at: list[int] = []
    set_volume = viewer.set_volume

    def set_volume_and_mark(*args) -> None:
        set_volume(*args)
        shown_at.append(counter.count)

    viewer.set_volume = set_volume_and_mark
    samples = []
    for _ in range(min(switches, session.case_count - 1)):
        for question in session.questions:
            window.answer(question.key, question.options[2].letter)
        if wait_for_preload:
            window.cache.request(session.case_path(session.index + 1)).result()
        shown_at.clear()
        start = time.perf_counter()
        QTest.keyClick(window, Qt.Key.Key_Return)
        run_until(lambda: bool(shown_at) and counter.count > shown_at[0])
        samples.append((time.perf_counter() - start) * 1e3)
    window.close()
    return percentiles(samples)


def time_startup(study_folder: Path, runs: int) -> dict:
    """Seconds for a fresh process to render the window to a PNG, and what it imported."""
    code = (
        "import time\n"
        "start = time.perf_counter()\n"
        "import json, sys\n"
        "from reader_app.cli.reader import main\n"
        f"code = main([{str(study_folder)!r}, '--screenshot', sys.argv[1]])\n"
        "print(json.dumps({'code': code, 'inside_s': time.perf_counter() - start,\n"
        "                  'torch': 'torch' in sys.modules, 'monai': 'monai' in sys.modules}))\n"
    )
    whole, inside, heavy = [], [], set()
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(runs):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code, str(Path(tmp) / f"{run}.png")],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            whole.append(time.perf_counter() - start)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if result["code"] != 0:
                raise RuntimeError(f"the screenshot run failed: {out.stderr.strip()}")
            inside.append(result["inside_s"])
            heavy |= {name for name in ("torch", "monai") if result[name]}
    return {"n": runs, "process_s": statistics.median(whole),
            "import_to_png_s": statistics.median(inside), "heavy_imports": sorted(heavy)}


def main() -> None:
    """Build the studies, time every row and print the table (or one JSON object)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="slice steps timed per row")
    parser.add_argument("--switches", type=int, default=11, help="case switches timed per row")
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--study-dir", metavar="DIR",
                        help="build the studies here and keep them (default: a temporary folder)")
    args = parser.parse_args()

    from PySide6.QtCore import qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    from reader_app.launch import drop_offscreen_notice
    from reader_app.widgets.theme import apply_dark_theme

    qInstallMessageHandler(drop_offscreen_notice)
    app = QApplication.instance() or QApplication([])
    apply_dark_theme(app)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.study_dir) if args.study_dir else Path(tmp)
        print("building the benchmark studies ...", file=sys.stderr)
        big = build_study(folder, STEP_SHAPE, 2, "Head CT phantom, 512 x 512")
        small = build_study(folder, SWITCH_SHAPE, args.switches + 1, "Head CT phantom")
        print("timing ...", file=sys.stderr)
        full, bare = time_slice_steps(big, args.steps)
        layouts = time_layout_steps(small, args.steps)
        preloaded = time_case_switches(small, args.switches, wait_for_preload=True)
        at_once = time_case_switches(small, args.switches, wait_for_preload=False)
        startup = time_startup(small, args.startup_runs)

    results = {
        "slice_step_full_window_512": {**full, "target_p95_ms": STEP_TARGET_MS},
        "slice_step_bare_imageitem_512": bare,
        "slice_step_single_view_256x256x32": {**layouts["single"],
                                              "target_p95_ms": STEP_TARGET_MS},
        "slice_step_three_views_axial_256x256x32": {**layouts["three_axial"],
                                                    "target_p95_ms": STEP_TARGET_MS},
        "slice_step_three_views_coronal_256x256x32": {**layouts["three_coronal"],
                                                      "target_p95_ms": STEP_TARGET_MS},
        "case_switch_preloaded_256x256x32": {**preloaded, "target_ms": SWITCH_TARGET_MS},
        "case_switch_at_once_256x256x32": at_once,
        "startup_screenshot": {**startup, "target_s": STARTUP_TARGET_S},
    }
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'measure':44} {'n':>4} {'p50':>9} {'p95':>9} {'max':>9}  target")
    labels = [("slice step, full window, 512x512", "slice_step_full_window_512",
               f"p95 < {STEP_TARGET_MS:.0f} ms"),
              ("slice step, bare ImageItem, 512x512", "slice_step_bare_imageitem_512", ""),
              ("slice step, single view, 256x256x32", "slice_step_single_view_256x256x32",
               f"p95 < {STEP_TARGET_MS:.0f} ms"),
              ("slice step, three views, axial stepped", "slice_step_three_views_axial_256x256x32",
               f"p95 < {STEP_TARGET_MS:.0f} ms"),
              ("slice step, three views, coronal stepped",
               "slice_step_three_views_coronal_256x256x32", f"p95 < {STEP_TARGET_MS:.0f} ms"),
              ("case switch, preloaded, 256x256x32", "case_switch_preloaded_256x256x32",
               f"< {SWITCH_TARGET_MS:.0f} ms"),
              ("case switch, Next at once, 256x256x32", "case_switch_at_once_256x256x32", "")]
    for label, key, target in labels:
        row = results[key]
        print(f"{label:44} {row['n']:>4} {row['p50_ms']:>6.1f} ms {row['p95_ms']:>6.1f} ms "
              f"{row['max_ms']:>6.1f} ms  {target}")
    print(f"{'start-up to screenshot, whole process':44} {startup['n']:>4} "
          f"{startup['process_s']:>7.2f} s  (import to PNG {startup['import_to_png_s']:.2f} s)"
          f"  < {STARTUP_TARGET_S:.0f} s; torch/MONAI imported: "
          f"{', '.join(startup['heavy_imports']) or 'no'}")


if __name__ == "__main__":
    main()
