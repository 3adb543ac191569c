"""The report under stress: hostile file names, files changed after the run, many pairs.

A behaviour-level file, named for what it checks rather than for one module: its tests
share one builder of real image files and their results, and go through
``write_report``, ``ds.review`` and ``scan_results``. They cover
:mod:`pipeline.report.build` and :mod:`pipeline.report.html` (names shown, not
interpreted; the worst, skipped, ambiguous and unpaired tables; a page the size of
its figures), :mod:`pipeline.review.maps` (a pair whose files are gone, changed or
unreadable fails alone, and says why), :mod:`pipeline.review.figures` and
:mod:`pipeline.review.plots` (no mathtext, one colour scale, whole-number counts) and
:mod:`pipeline.results.summary` (a store read in batches gives the same report).

Stored scores come from scikit-image (``structural_similarity`` with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255``,
the ``wang2004`` profile), so a pair the report does *not* flag as
changed is one whose recomputed score agrees with an independent implementation.
"""

from __future__ import annotations

import html
import io
import os
import re
import tracemalloc
from pathlib import Path

import numpy as np
import xarray as xr
from PIL import Image
from skimage.metrics import structural_similarity

import pipeline
from pipeline.report.build import REPORT_FILES, write_report
from pipeline.report.html import html_page
from pipeline.results import summary as results_summary
from pipeline.results.schema import COUNT, FLOAT_STATISTICS, SSIM_HIST, build_dataset
from pipeline.results.stores import as_results

BINS = 20
SIDE = 32
_PAD = 5  # (11 - 1) // 2: skimage's map is cropped by this to the valid region


def _pair_images(rng: np.random.Generator, noise: int) -> tuple[np.ndarray, np.ndarray]:
    reference = rng.integers(0, 256, size=(SIDE, SIDE), dtype=np.uint8)
    jitter = rng.integers(-noise, noise + 1, size=reference.shape)
    generated = np.clip(reference.astype(np.int16) + jitter, 0, 255).astype(np.uint8)
    return reference, generated


def _skimage_row(reference: np.ndarray, generated: np.ndarray) -> dict[str, np.ndarray]:
    """One pair's statistics in region ``all``, from scikit-image's SSIM map."""
    score, full = structural_similarity(
        reference,
        generated,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        full=True,
    )
    valid = full[_PAD:-_PAD, _PAD:-_PAD]
    row = {name: np.array([float(score)]) for name in FLOAT_STATISTICS}
    row["ssim_std"], row["ssim_min"] = np.array([valid.std()]), np.array([valid.min()])
    row["ssim_max"] = np.array([valid.max()])
    row[COUNT] = np.array([valid.size])
    row[SSIM_HIST] = np.histogram(valid, bins=BINS, range=(-1.0, 1.0))[0][None, :]
    return row


def _attrs(**extra: object) -> dict[str, object]:
    attrs: dict[str, object] = {
        "profile": "wang2004",
        "ssim_window": "gaussian",
        "ssim_win_size": 11,
        "ssim_sigma": 1.5,
        "ssim_k1": 0.01,
        "ssim_k2": 0.03,
        "ssim_covariance": "population",
        "data_range": 255.0,
        "color_mode": "grey",
        "package_version": pipeline.__version__,
    }
    attrs.update(extra)
    return attrs


def _folder_results(
    root: Path, names: list[str], rng: np.random.Generator, **attrs: object
) -> xr.Dataset:
    """Files ``reference/NAME`` and ``generated/NAME`` and their results (absolute paths)."""
    rows, references, generated = [], [], []
    for k, name in enumerate(names):
        x, y = _pair_images(rng, noise=10 + 15 * k)
        for side, picture in (("reference", x), ("generated", y)):
            path = root / side / name
            path.parent.mkdir(parents=True, exist_ok=True)
            # Bytes, not str: a name that was not UTF-8 goes back to its own bytes.
            with open(os.fsencode(path), "wb") as handle:
                Image.fromarray(picture).save(handle, format="PNG")
        rows.append(_skimage_row(x, y))
        references.append(str(root / "reference" / name))
        generated.append(str(root / "generated" / name))
    statistics = {name: np.stack([row[name] for row in rows]) for name in rows[0]}
    return build_dataset(
        statistics,
        image=np.asarray(names, dtype=object),
        reference=references,
        generated=generated,
        regions=["all"],
        status=["ok"] * len(names),
        attrs=_attrs(**attrs),
    )


def _worst_rows(page: Path) -> dict[str, str]:
    """Each worst pair's id -> its 'SSIM map' cell, read from the page's worst table."""
    text = page.read_text(encoding="utf-8")
    table = text.split("<h2>Worst", 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S):
        cells = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row, flags=re.S)]
        if cells:
            rows[cells[1]] = cells[-3]  # [..., SSIM map, reference file, generated file]
    return rows


# -- names are data --------------------------------------------------------------


HOSTILE_NAMES = [
    "price $\\notacommand$ and #3.png",
    "esc\x1b[31mred\x1b[0m.png",
    "new\nline.png",
    os.fsdecode(b"latin\xe9.png"),  # not UTF-8: Python keeps the byte as a surrogate
    "l" * 200 + ".png",
]


def test_hostile_file_names_are_shown_not_interpreted(tmp_path, rng):
    ds = _folder_results(tmp_path, HOSTILE_NAMES, rng)
    page = write_report(ds, tmp_path / "report", worst=len(HOSTILE_NAMES))
    text = page.read_text(encoding="utf-8")
    # Every pair was found by its absolute path and recomputed; none was misread.
    assert sorted(_worst_rows(page).values()) == ["recomputed"] * len(HOSTILE_NAMES)
    for shown in (
        "price $\\notacommand$ and #3.png",  # a dollar is a dollar
        "esc\\x1b[31mred\\x1b[0m.png",  # the escape shows, it does not colour the page
        "new\\x0aline.png",
        "latin\\xe9.png",  # the byte that was not UTF-8
        "l" * 200 + ".png",  # the page holds the whole name
    ):
        assert html.escape(shown, quote=False) in text, shown
    assert "\x1b" not in text and "new\nline" not in text
    assert (tmp_path / "report" / REPORT_FILES["worst"]).stat().st_size > 0


def test_names_in_figures_are_never_mathtext(tmp_path, rng):
    ds = _folder_results(tmp_path, HOSTILE_NAMES[:1], rng)
    figure = ds.review.show_pair(0)
    texts = [figure.get_suptitle()] + [axis.get_title() for axis in figure.axes]
    assert any("$\\notacommand$" in t for t in texts), texts
    figure.savefig(io.BytesIO(), format="png")  # mathtext would raise on \notacommand here


# -- one pair's files, not the report --------------------------------------------


def test_gone_changed_and_unreadable_files_fail_only_their_pair(tmp_path, rng):
    names = ["kept.png", "gone.png", "changed.png", "resized.png", "truncated.png"]
    ds = _folder_results(tmp_path, names, rng)
    (tmp_path / "generated" / "gone.png").unlink()
    other, _ = _pair_images(np.random.default_rng(7), noise=1)
    Image.fromarray(other).save(tmp_path / "reference" / "changed.png")
    Image.fromarray(other[:24, :24]).save(tmp_path / "generated" / "resized.png")
    truncated = tmp_path / "reference" / "truncated.png"
    truncated.write_bytes(truncated.read_bytes()[:60])
    page = write_report(ds, tmp_path / "report", worst=len(names))
    notes = _worst_rows(page)
    assert notes["kept.png"] == "recomputed"
    assert notes["gone.png"].startswith("unavailable: generated file gone since the run: /")
    assert "the files changed since the run: their SSIM is now" in notes["changed.png"]
    assert notes["resized.png"].startswith("unavailable: not recomputed:")
    assert notes["truncated.png"].startswith("unavailable: reference file not readable:")
    assert (tmp_path / "report" / REPORT_FILES["worst"]).exists()


def test_relative_names_that_cannot_be_found_say_why(tmp_path, rng, monkeypatch):
    ds = _folder_results(tmp_path, ["a.png"], rng)
    monkeypatch.chdir(tmp_path)
    relative = ds.assign_coords(
        reference=("image", ["reference/a.png"]), generated=("image", ["generated/a.png"])
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    page = write_report(relative, tmp_path / "report", worst=1)
    note = _worst_rows(page)["a.png"]
    assert "reference file not found: reference/a.png (a relative path, looked for from" in note
    assert "the results do not record the folder the run started in" in note


# -- the page reads at a glance --------------------------------------------------


def test_worst_table_puts_the_generated_file_beside_the_reference(tmp_path, rng):
    ds = _folder_results(tmp_path, ["x/a.png", "x/b.png"], rng)
    page = write_report(ds, tmp_path / "report", worst=2)
    text = page.read_text(encoding="utf-8")
    table = text.split("<h2>Worst", 1)[1].split("</table>", 1)[0]
    for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)[1:]:
        cells = re.findall(r"<td>(.*?)</td>", row)
        assert cells[-2] == str(tmp_path / "reference" / cells[1])
        assert cells[-1] == str(tmp_path / "generated" / cells[1])


def test_skipped_ambiguous_and_unpaired_files_are_listed(tmp_path, rng):
    ds = _folder_results(
        tmp_path,
        ["a.png"],
        rng,
        skipped_files=["reference/notes.txt (not an image)", "generated/.DS_Store (hidden)"],
        ambiguous=["cat: reference ['cat.png'], generated ['cat.jpg', 'cat.webp']"],
        unpaired_reference=["only_here.png"],
    )
    text = write_report(ds, tmp_path / "report", worst=1).read_text(encoding="utf-8")
    for heading in ("Skipped files", "Ambiguous stems", "Unpaired files"):
        assert f"<h2>{heading}</h2>" in text
    assert "<td>reference/notes.txt (not an image)</td>" in text
    assert "<td>generated/.DS_Store (hidden)</td>" in text
    assert html.escape("cat: reference ['cat.png'], generated ['cat.jpg', 'cat.webp']") in text
    assert "<tr><td>skipped files</td><td>2</td></tr>" in text


def test_every_ssim_map_has_one_colour_scale_and_a_legend(tmp_path, rng):
    ds = _folder_results(tmp_path, ["a.png", "b.png"], rng)
    # An inverted generated image: its SSIM map goes well below 0.
    inverted = 255 - np.asarray(Image.open(tmp_path / "reference" / "b.png"))
    Image.fromarray(inverted.astype(np.uint8)).save(tmp_path / "generated" / "b.png")
    ds["ssim"][1, 0] = structural_similarity(
        np.asarray(Image.open(tmp_path / "reference" / "b.png")),
        inverted.astype(np.uint8),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert float(ds["ssim"][1, 0]) < 0
    # ds.review.show_pair draws its SSIM map on the report's scale, whatever the map holds.
    shown = ds.review.show_pair("b.png")
    assert tuple(shown.axes[2].get_images()[0].get_clim()) == (0.0, 1.0)
    from pipeline.review.figures import worst_figure

    data = results_summary.scan_results(ds, 2)
    figure, notes = worst_figure(ds, data.worst)
    assert notes == ["recomputed", "recomputed"]
    maps = [image for axis in figure.axes for image in axis.get_images()]
    map_images = [im for im in maps if im.get_array().ndim == 2 and im.get_cmap().name != "gray"]
    assert len(map_images) == 2
    assert {tuple(im.get_clim()) for im in map_images} == {(0.0, 1.0)}
    colorbars = [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]
    assert len(colorbars) == 1
    assert "one scale for every map" in colorbars[0].get_ylabel()


def test_figures_fit_the_page_so_heatmap_numbers_stay_readable(tmp_path, rng):
    names = [f"p{k}.png" for k in range(4)]
    ds = _folder_results(tmp_path, names, rng)
    grid = ["all", "r0c0", "r0c1", "r1c0", "r1c1"]
    values = np.repeat(ds["ssim"].values, len(grid), axis=1)
    ds = ds.reindex(region=grid, fill_value=0).copy()
    for name in ds.data_vars:
        if ds[name].dims == ("image", "region"):
            ds[name].values[:] = values
    page = write_report(ds, tmp_path / "report", worst=4)
    css_width = int(re.search(r"max-width:(\d+)px", page.read_text(encoding="utf-8"))[1])
    for key in ("histogram", "regions", "worst"):
        with Image.open(tmp_path / "report" / REPORT_FILES[key]) as png:
            # Wider than the page, the browser shrinks it and 8-point numbers become 7 px.
            assert png.width <= css_width, (key, png.width, css_width)


def test_count_axis_has_whole_numbers(tmp_path, rng):
    ds = _folder_results(tmp_path, ["a.png", "b.png", "c.png"], rng)
    figure = ds.review.plot_hist()
    counts_axis = figure.axes[1]
    assert counts_axis.get_ylabel() == "pairs"
    ticks = counts_axis.get_yticks()
    assert np.array_equal(ticks, np.round(ticks)), ticks


# -- many pairs: read in batches -------------------------------------------------


def _many_pairs(n: int, rng: np.random.Generator) -> xr.Dataset:
    """``n`` pairs of statistics (no files), scores with ties and some failures."""
    scores = np.round(rng.uniform(0.2, 1.0, size=(n, 1)), 2)  # rounded: many ties
    status = np.where(rng.uniform(size=n) < 0.1, "generated x.png: corrupt", "ok")
    scores[status != "ok"] = np.nan
    statistics = {name: scores.copy() for name in FLOAT_STATISTICS}
    statistics[COUNT] = np.full((n, 1), 484)
    statistics[SSIM_HIST] = rng.integers(0, 50, size=(n, 1, 100))
    return build_dataset(
        statistics,
        image=np.arange(n),
        reference=[f"numpy array[{k}]" for k in range(n)],
        generated=[f"numpy array[{k}]" for k in range(n)],
        regions=["all"],
        status=list(status),
        attrs=_attrs(),
    )


def test_a_store_is_read_in_batches_with_the_same_report(tmp_path, rng, monkeypatch):
    n = 20_000
    ds = _many_pairs(n, rng)
    store = tmp_path / "results.zarr"
    # Chunked along image as the engine's store is: one chunk per commit batch.
    chunked = [*ds.data_vars, "reference", "generated"]
    encoding = {name: {"chunks": (1000, *ds[name].shape[1:])} for name in chunked}
    ds.to_zarr(store, consolidated=False, encoding=encoding)
    in_memory = results_summary.scan_results(ds, 8)  # one batch: 2**22 values hold 20,000 pairs
    monkeypatch.setattr(results_summary, "_BATCH_VALUES", 2**16)
    lazy = as_results(store)
    assert results_summary.batch_length(lazy) == 1000
    tracemalloc.start()
    streamed = results_summary.scan_results(lazy, 8)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    hist_bytes = n * 100 * 8
    # Batches of 1,000 pairs: far below the 16 MB of ssim_hist that a load would hold.
    assert peak < hist_bytes / 4, (peak, hist_bytes)
    # The same report as from the whole table, checked against plain NumPy too.
    scores = ds["ssim"].values[:, 0]
    ok = (ds["status"].values == "ok") & np.isfinite(scores)
    expected = [k for k in np.argsort(scores, kind="stable") if ok[k]][:8]
    assert [pair.position for pair in streamed.worst] == expected
    assert streamed.worst == in_memory.worst
    np.testing.assert_array_equal(streamed.pooled_hist, ds["ssim_hist"].values[ok, 0].sum(0))
    np.testing.assert_array_equal(streamed.scores["ssim"], scores[ok])
    assert streamed.n_ok == int(ok.sum())
    assert len(streamed.failed) == min(results_summary.FAILED_LISTED, n - int(ok.sum()))
    assert html_page(ds.attrs, in_memory, {}, []) == html_page(lazy.attrs, streamed, {}, [])
    out_store = write_report(store, tmp_path / "b", worst=2).read_text(encoding="utf-8")
    # About 2,000 failed pairs: the page lists the first 1,000 and says how many there are.
    n_failed = n - int(ok.sum())
    assert f"The first 1,000 of {n_failed:,} failed pairs" in out_store
    assert out_store.count("generated x.png: corrupt") == 1000
