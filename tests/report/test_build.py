"""pipeline.report.build: PNG figures and one self-contained HTML page, checked in a real browser.

Also covers :mod:`pipeline.report.html`, whose ``html_page`` is called only by
``write_report``: the page's content (summary, failed and unpaired files, embedded
figures, no script or external resource) is asserted through ``write_report`` here
and in test_trust.py.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import pipeline
from pipeline.cli.demo import make_demo_folders
from pipeline.inputs.images import decode_image
from pipeline.inputs.pairing import pair_folders
from pipeline.report.build import REPORT_FILES, write_report
from pipeline.results.schema import build_dataset, validate_dataset

BINS = 40
GRID = (2, 2)
MEANS = ("ssim", "luminance", "contrast", "structure")
SPREAD = ("ssim_std", "ssim_min", "ssim_max")
CORRUPT_REASON = "corrupt or truncated image (image file is truncated)"


def _region_statistics(maps: dict[str, np.ndarray], rows: int, cols: int) -> dict[str, np.ndarray]:
    """Per-region statistics of one pair's valid maps, computed plainly with NumPy."""
    height, width = maps["ssim"].shape[:2]
    row_of = np.arange(height)[:, None] * rows // height
    col_of = np.arange(width)[None, :] * cols // width
    masks = [np.ones((height, width), bool)]
    masks += [(row_of == i) & (col_of == j) for i in range(rows) for j in range(cols)]
    out: dict[str, list] = {k: [] for k in (*MEANS, *SPREAD, "count", "ssim_hist")}
    per_pixel = {k: v.mean(axis=-1) if v.ndim == 3 else v for k, v in maps.items()}
    for mask in masks:
        values = per_pixel["ssim"][mask]
        for name in MEANS:
            out[name].append(per_pixel[name][mask].mean())
        out["ssim_std"].append(values.std())
        out["ssim_min"].append(values.min())
        out["ssim_max"].append(values.max())
        out["count"].append(values.size)
        out["ssim_hist"].append(np.histogram(values, bins=BINS, range=(-1.0, 1.0))[0])
    return {k: np.asarray(v) for k, v in out.items()}


def _attrs() -> dict[str, object]:
    return {
        "profile": "wang2004",
        "ssim_window": "gaussian",
        "ssim_win_size": 11,
        "ssim_sigma": 1.5,
        "ssim_k1": 0.01,
        "ssim_k2": 0.03,
        "ssim_covariance": "population",
        "data_range": 255.0,
        "data_range_source": "dtype uint8",
        "color_mode": "channels",
        "package_version": pipeline.__version__,
        "config_fingerprint": "test",
        "created": "2026-01-01T00:00:00Z",
        "unpaired_reference": ["people/unpaired_coins.png"],
        "unpaired_generated": [],
    }


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory) -> tuple[xr.Dataset, dict[str, dict[str, np.ndarray]]]:
    """A results Dataset of the demo folders, built by hand to the result schema.

    The engine is not used: statistics come from ``pipeline.ssim(full=True)``
    maps cut into a 2x2 grid. The last pair is marked failed, as a corrupt
    file would be.
    """
    root = tmp_path_factory.mktemp("demo")
    reference_dir, generated_dir = make_demo_folders(root)
    plan = pair_folders(reference_dir, generated_dir)
    regions = ["all"] + [f"r{i}c{j}" for i in range(GRID[0]) for j in range(GRID[1])]
    rows: list[dict[str, np.ndarray]] = []
    maps_by_id: dict[str, dict[str, np.ndarray]] = {}
    status = []
    for index, pair in enumerate(plan.pairs):
        if index == len(plan.pairs) - 1:
            n_regions = 1 + GRID[0] * GRID[1]
            failed = {k: np.full(n_regions, np.nan) for k in (*MEANS, *SPREAD)}
            failed["count"] = np.zeros(n_regions, dtype=np.int64)
            failed["ssim_hist"] = np.zeros((n_regions, BINS), dtype=np.int64)
            rows.append(failed)
            status.append(f"{pair.generated}: {CORRUPT_REASON}")
            continue
        x, y = decode_image(pair.reference), decode_image(pair.generated)
        _, maps = pipeline.ssim(x, y, channel_axis=-1 if x.ndim == 3 else None, full=True)
        maps_by_id[pair.id] = maps
        rows.append(_region_statistics(maps, *GRID))
        status.append("ok")
    statistics = {name: np.stack([row[name] for row in rows]) for name in rows[0]}
    ds = build_dataset(
        statistics,
        image=np.asarray(plan.ids, dtype=object),
        reference=[str(p.reference) for p in plan.pairs],
        generated=[str(p.generated) for p in plan.pairs],
        regions=regions,
        status=status,
        attrs=_attrs(),
    )
    validate_dataset(ds)
    return ds, maps_by_id


def test_fixture_scores_match_the_in_memory_ssim(demo_results):
    ds, maps = demo_results
    for image_id, pair_maps in maps.items():
        expected = float(np.mean(pair_maps["ssim"]))
        assert float(ds["ssim"].sel(image=image_id, region="all")) == pytest.approx(expected)


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "img":
            self.sources.append(values.get("src") or "")
        for name in ("href", "src"):
            if name in values and tag != "img":
                self.links.append(values[name] or "")


def _images_in(page: Path) -> _Images:
    parser = _Images()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_report_writes_figures_and_self_contained_html(demo_results, tmp_path):
    ds, _ = demo_results
    page = write_report(ds, tmp_path / "report", worst=3)
    assert page == tmp_path / "report" / REPORT_FILES["html"]
    for key in ("histogram", "regions", "worst"):
        png = tmp_path / "report" / REPORT_FILES[key]
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), key
    parsed = _images_in(page)
    assert len(parsed.sources) == 3
    for source in parsed.sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG")
    assert parsed.links == []  # no stylesheet, script or link to fetch
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "<script" not in text
    # Summary, failures and unpaired files are on the page.
    failed_id = str(ds["image"].values[-1])
    assert failed_id in text and "image file is truncated" in text
    assert "people/unpaired_coins.png" in text
    worst_id = str(ds["image"].values[int(np.nanargmin(ds["ssim"].sel(region="all").values))])
    assert text.index(worst_id) < text.index("Failed pairs")
    assert "recomputed" in text  # no maps were saved: the worst maps are recomputed


def test_report_from_a_zarr_store_uses_saved_maps(demo_results, tmp_path):
    ds, maps = demo_results
    store = tmp_path / "results.zarr"
    ds.to_zarr(store, mode="w", consolidated=False)
    grey_ids = [i for i, m in maps.items() if m["ssim"].ndim == 2]
    stack = np.stack([maps[i]["ssim"] for i in grey_ids])
    saved = xr.Dataset(
        {"ssim": (("image", "y", "x"), stack)}, coords={"image": np.asarray(grey_ids, dtype=object)}
    )
    saved.to_zarr(store, group="maps", mode="a", consolidated=False)
    page = write_report(store, tmp_path / "out", worst=8)
    text = page.read_text(encoding="utf-8")
    assert "saved" in text and "recomputed" in text


def test_report_without_regions_has_no_heatmap(demo_results, tmp_path):
    ds, _ = demo_results
    page = write_report(ds.sel(region=["all"]), tmp_path, worst=2)
    assert not (tmp_path / REPORT_FILES["regions"]).exists()
    assert len(_images_in(page).sources) == 2


def test_report_with_label_regions_draws_bars(demo_results, tmp_path):
    ds, _ = demo_results
    named = ds.assign_coords(region=["all", "sky", "face", "hands", "background"])
    write_report(named, tmp_path, worst=1)
    assert (tmp_path / REPORT_FILES["regions"]).exists()


def test_report_errors(demo_results, tmp_path):
    ds, _ = demo_results
    with pytest.raises(ValueError, match=r"worst must be a positive integer \(got 0\)"):
        write_report(ds, tmp_path, worst=0)
    with pytest.raises(FileNotFoundError, match=r"results not found: .*nothing\.zarr"):
        write_report(tmp_path / "nothing.zarr", tmp_path)
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match=r"report output must be a folder.*file\.txt"):
        write_report(ds, afile)
    with pytest.raises(ValueError, match=r"lacks ssim_hist"):
        write_report(ds.drop_vars("ssim_hist"), tmp_path)
    with pytest.raises(TypeError, match=r"ds_or_path must be an xarray.Dataset .*got int"):
        write_report(3, tmp_path)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# a real browser


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


# Injected into a copy of the page: it marks each <img> with whether it decoded,
# so that --dump-dom shows what the browser actually rendered.
_PROBE = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  images.forEach((img) => {
    img.setAttribute("data-decoded", String(img.complete && img.naturalWidth > 0));
    img.setAttribute("data-natural", img.naturalWidth + "x" + img.naturalHeight);
  });
  document.body.setAttribute("data-probe", "done " + images.length);
});
</script>
"""


def _run_chromium(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        return subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_browser_renders_every_figure(demo_results, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (apt-get install -y chromium); .ci/run installs it")
    ds, _ = demo_results
    page = write_report(ds, tmp_path / "report", worst=3)
    probe = page.with_name("probe.html")
    probe.write_text(
        page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8"
    )
    result = _run_chromium(browser, "--dump-dom", probe.as_uri())
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'data-probe="done 3"' in dom, dom[-2000:]
    decoded = re.findall(r'data-decoded="(true|false)"', dom)
    assert decoded == ["true"] * 3, re.findall(r'data-natural="([^"]*)"', dom)
    sizes = [tuple(map(int, s.split("x"))) for s in re.findall(r'data-natural="([^"]*)"', dom)]
    assert all(w >= 300 and h >= 200 for w, h in sizes), sizes

    # A screenshot too: the page paints (not blank) at a desktop size.
    shot = tmp_path / "report.png"
    result = _run_chromium(
        browser, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2400, 1200)
    assert pixels.std() > 10  # text and figures, not an empty white page
    if os.environ.get("SSIM_PIPELINE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["SSIM_PIPELINE_KEEP_SCREENSHOT"])


def test_report_has_psnr_beside_ssim(tmp_path):
    """PSNR/MSE rows, the worst pairs' PSNR and a PSNR panel; values from skimage."""
    from skimage.metrics import peak_signal_noise_ratio

    from pipeline.testing import degrade, photograph

    rng = np.random.default_rng(5)
    x = np.stack([photograph("camera")[:96, 64 * k : 64 * k + 96] for k in range(3)])
    y = np.stack([degrade(image, "noise", strength=10.0, rng=rng) for image in x])
    y[2] = x[2]  # identical: PSNR inf
    ds = pipeline.evaluate(x, y)
    text = write_report(ds, tmp_path / "report", worst=3).read_text(encoding="utf-8")
    assert "psnr (dB)" in text and "<td>mse</td>" in text
    worst_psnr = peak_signal_noise_ratio(x[0], y[0], data_range=255)
    assert f"{worst_psnr:.2f}" in text or f"{peak_signal_noise_ratio(x[1], y[1]):.2f}" in text
    assert "<td>inf</td>" in text
    assert "1 pair(s) have identical pixels" in text
    assert "not only the valid SSIM map" in text


def test_report_of_results_without_psnr_has_no_psnr_parts(demo_results, tmp_path):
    ds, _ = demo_results  # built without mse/psnr, as an earlier version wrote results
    assert "psnr" not in ds
    text = write_report(ds, tmp_path / "report", worst=2).read_text(encoding="utf-8")
    # Embedded images are base64: their letters may spell anything, so leave them out.
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", text)
    assert "psnr" not in text.lower()


# -- several models ------------------------------------------------------------

# Three models of six camera crops written as PNG folders, one evaluate run each,
# stacked on ``model``: by SSIM mild (noise sigma 8) > patchy (sigma 40, top-left
# quadrant exact: it wins r0c0) > heavy (sigma 25).
MODEL_NAMES = ("mild", "patchy", "heavy")


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory) -> xr.Dataset:
    import json

    import pandas as pd
    from PIL import Image

    from pipeline.testing import degrade, photograph

    root = tmp_path_factory.mktemp("models")
    camera = photograph("camera")
    crops = [camera[64 * k : 64 * k + 64, 100:164] for k in range(6)]
    rng = np.random.default_rng(5)
    folders = {}
    for name, strength in (("reference", 0.0), ("mild", 8.0), ("patchy", 40.0), ("heavy", 25.0)):
        folder = root / name
        folder.mkdir()
        for k, crop in enumerate(crops):
            image = crop if not strength else degrade(crop, "noise", strength=strength, rng=rng)
            if name == "patchy":
                image[:32, :32] = crop[:32, :32]
            Image.fromarray(image).save(folder / f"img{k}.png")
        folders[name] = folder
    # A file only patchy's folder has: unpaired in patchy's own run.
    Image.fromarray(crops[0]).save(folders["patchy"] / "extra.png")
    runs = [
        pipeline.evaluate(str(folders["reference"]), str(folders[name]), regions="2x2")
        for name in MODEL_NAMES
    ]
    ds = xr.concat(
        runs,
        dim=pd.Index(MODEL_NAMES, name="model"),
        coords="different",
        compat="equals",
        combine_attrs="override",
    )
    ds = ds.assign_coords(model=np.asarray(MODEL_NAMES, dtype=object))
    # Each model's own pairing report, as a run of several models records it.
    own = {
        name: {"unpaired_generated": list(run.attrs["unpaired_generated"])}
        for name, run in zip(MODEL_NAMES, runs, strict=True)
    }
    return ds.assign_attrs(
        models=json.dumps(list(MODEL_NAMES)), model_attrs=json.dumps(own), unpaired_generated=[]
    )


class _Page(HTMLParser):
    """Headings, tables (rows of cell texts) and image alt texts, in page order."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[str, object]] = []
        self._text: list[str] | None = None
        self._table: list[list[str]] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2", "h3", "td", "th"):
            self._text = []
        elif tag == "table":
            self._table = []
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag == "img":
            self.items.append(("img", dict(attrs).get("alt")))

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3") and self._text is not None:
            self.items.append((tag, "".join(self._text)))
            self._text = None
        elif tag in ("td", "th") and self._text is not None and self._table is not None:
            self._table[-1].append("".join(self._text))
            self._text = None
        elif tag == "table" and self._table is not None:
            self.items.append(("table", self._table))
            self._table = None

    def after(self, kind: str, text: str) -> list[tuple[str, object]]:
        """The items after the heading ``text``."""
        k = self.items.index((kind, text))
        return self.items[k + 1 :]


def _parse(page: Path) -> _Page:
    parser = _Page()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_report_of_several_models_opens_on_their_comparison(model_folders, tmp_path):
    page = write_report(model_folders, tmp_path / "report", worst=3)
    parsed = _parse(page)
    headings = [text for kind, text in parsed.items if kind == "h2"]
    assert headings[0] == "Model comparison"
    assert headings.index("Model comparison") < headings.index("Model mild")
    assert [h for h in headings if h.startswith("Model ")][1:] == [
        f"Model {name}" for name in MODEL_NAMES
    ]
    ranking = next(item for kind, item in parsed.after("h3", "Ranking") if kind == "table")
    header, *rows = ranking
    assert header[:5] == ["SSIM rank", "model", "ok pairs", "mean SSIM", "SSIM 95% CI"]
    assert [row[1] for row in rows] == list(MODEL_NAMES)
    expected = {n: float(model_folders.ssim.sel(model=n, region="all").mean()) for n in MODEL_NAMES}
    for row in rows:
        mean = float(row[3])
        low, high = (float(v) for v in row[4].split(" – "))
        assert mean == pytest.approx(expected[row[1]], abs=1e-4)
        assert low <= mean <= high
    assert [row[5] for row in rows] == ["1", "3", "2"]  # PSNR: mild > heavy > patchy
    tests = next(item for kind, item in parsed.after("h3", "Paired tests") if kind == "table")
    assert tests[0] == ["row − column", *MODEL_NAMES]
    assert [row[k + 1] for k, row in enumerate(tests[1:])] == ["–"] * 3
    assert tests[1][3].startswith("Δ +") and "Wilcoxon p" in tests[1][3] and "n 6" in tests[1][3]
    on_psnr = next(
        item for kind, item in parsed.after("h3", "Paired tests on PSNR") if kind == "table"
    )
    assert on_psnr[0] == ["row − column", *MODEL_NAMES]
    comparison = model_folders.review.compare()
    difference = float(comparison.psnr_mean_difference.sel(model_pair="mild vs heavy"))
    assert on_psnr[1][3].startswith(f"Δ {difference:+.2f} dB; Wilcoxon p")
    winners = parsed.after("h3", "Best model per region")
    assert winners[0] == ("img", "best model per region")
    table = next(item for kind, item in winners if kind == "table")
    assert {row[0]: row[1] for row in table[1:]}["r0c0"] == "patchy"
    disagree = parsed.after("h3", "Where the models disagree most (3)")
    assert ("img", "most-disagreeing references") in disagree[:3]
    out = tmp_path / "report"
    for name in ("model_region_winners.png", "model_disagreements.png"):
        assert (out / name).stat().st_size > 0
    # Each model lists the files its own run left unpaired.
    patchy = parsed.after("h2", "Model patchy")
    assert ("h3", "patchy: Unpaired files") in patchy
    assert ("h3", "heavy: Unpaired files") not in parsed.items
    table = next(
        item for kind, item in parsed.after("h3", "patchy: Unpaired files") if kind == "table"
    )
    assert table[1][0] == "generated" and table[1][1].endswith("extra.png")
    for k in range(3):
        assert (out / f"model{k}_ssim_histogram.png").exists()
        assert (out / f"model{k}_worst_pairs.png").exists()


def test_report_of_models_without_a_shared_ok_pair_says_so(model_folders, tmp_path):
    status = model_folders.status.values.copy()
    status[0, :3] = "corrupt or truncated image (test)"
    status[1, 3:] = "corrupt or truncated image (test)"
    broken = model_folders.assign(status=(("model", "image"), status))
    page = write_report(broken, tmp_path / "report", worst=1)
    text = page.read_text(encoding="utf-8")
    assert "the models cannot be compared" in text and "no reference that is ok in all" in text
    headings = [text for kind, text in _parse(page).items if kind == "h2"]
    assert headings[0] == "Model comparison" and "Model heavy" in headings


def test_report_cli_on_a_multi_model_store(model_folders, tmp_path):
    from pipeline.cli.main import main
    from pipeline.results.stores import write_zarr

    store = tmp_path / "models.zarr"
    try:
        write_zarr(model_folders, store)
    except ValueError as error:
        # Until the results schema knows ``model``: xarray's writer, as write_zarr's own.
        if "expected ('image', 'region')" not in str(error):
            raise
        model_folders.to_zarr(store, zarr_format=3, consolidated=False)
    out = tmp_path / "cli-report"
    assert main(["report", str(store), "--out", str(out), "--worst", "1"]) == 0
    parsed = _parse(out / "report.html")
    assert next(text for kind, text in parsed.items if kind == "h2") == "Model comparison"
    ranking = next(item for kind, item in parsed.after("h3", "Ranking") if kind == "table")
    assert [row[1] for row in ranking[1:]] == list(MODEL_NAMES)


def test_model_names_are_shown_never_interpreted(model_folders, tmp_path):
    names = ["<b>bold</b>", "$x^2$", "plain"]
    renamed = model_folders.assign_coords(model=np.asarray(names, dtype=object))
    page = write_report(renamed, tmp_path / "report", worst=1)
    text = page.read_text(encoding="utf-8")
    assert "<b>bold</b>" not in text and "&lt;b&gt;bold&lt;/b&gt;" in text
    parsed = _parse(page)
    ranking = next(item for kind, item in parsed.after("h3", "Ranking") if kind == "table")
    assert [row[1] for row in ranking[1:]] == names
    assert "Model $x^2$" in [text for kind, text in parsed.items if kind == "h2"]


def test_report_of_several_models_draws_each_models_saved_maps(tmp_path):
    # In-memory stacks: nothing to recompute from, so a map shown is a saved one.
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (4, 40, 40), dtype=np.uint8)
    models = {
        "mild": np.clip(x + rng.normal(0, 8, x.shape), 0, 255).astype(np.uint8),
        "heavy": np.clip(x + rng.normal(0, 40, x.shape), 0, 255).astype(np.uint8),
    }
    store = tmp_path / "r.zarr"
    pipeline.evaluate(x, models, output=str(store), save_maps=True)
    page = write_report(store, tmp_path / "report", worst=2)
    parsed = _parse(page)
    for name in models:
        worst = next(
            item
            for kind, item in parsed.after("h2", f"Model {name}")
            if kind == "table" and "SSIM map" in item[0]
        )
        column = worst[0].index("SSIM map")
        assert len(worst) == 3
        assert all(row[column].startswith("saved") for row in worst[1:])  # images: in memory
    unsaved = tmp_path / "unsaved.zarr"
    pipeline.evaluate(x, models, output=str(unsaved))
    parsed = _parse(write_report(unsaved, tmp_path / "report2", worst=2))
    worst = next(
        item
        for kind, item in parsed.after("h2", "Model heavy")
        if kind == "table" and "SSIM map" in item[0]
    )
    assert all(row[worst[0].index("SSIM map")].startswith("unavailable") for row in worst[1:])
