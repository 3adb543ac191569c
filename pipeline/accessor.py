"""``ds.review``: find out where and why generated images fail, from a result Dataset.

Importing :mod:`pipeline` registers an xarray Dataset accessor named ``review``
(a name no result variable uses)::

    ds = pipeline.open_results("results.zarr")   # lazy, Dask-backed
    ds.review.summary()          # counts, mean, quantiles, worst pairs
    ds.review.worst(5)           # the five lowest-scoring pairs, as a table
    ds.review.quantile(0.05)     # a quantile of every valid SSIM-map pixel
    ds.review.compare(other)     # two models on the same references
    ds.review.show_pair("a.png") # reference, generated, SSIM (and l, c, s) maps

Quantiles come from the merged ``ssim_hist`` histograms, interpolated linearly
inside the bin that holds the quantile; the whole map is never needed, but the
answer is exact only to the bin width (``2 / hist_bins``: 0.02 with the default
100 bins).

The figures reuse :mod:`pipeline.report`'s drawing code and return
``matplotlib.figure.Figure`` objects built on the Agg canvas; matplotlib is
imported only when a plot is asked for. Methods taking ``image`` accept the
pair's id (a string; for stacks the index as text also works) or its integer
position (negative counts from the end).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.dataset import (
    BIN,
    BIN_LOWER,
    BIN_UPPER,
    CONTRAST,
    FLOAT_STATISTICS,
    GENERATED,
    IMAGE,
    LUMINANCE,
    REFERENCE,
    REGION,
    SCORE_ATTRS,
    SSIM,
    SSIM_HIST,
    STATUS,
    STATUS_OK,
    STRUCTURE,
)
from pipeline.regions import ALL_REGION
from pipeline.summary import histogram_quantiles

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["ReviewAccessor"]

QUANTILE = "quantile"
_COMPONENTS = (LUMINANCE, CONTRAST, STRUCTURE)
_MAP_NAMES = (SSIM, *_COMPONENTS)
_STACK_NAME = re.compile(r"^(?P<path>.*)\[(?P<index>\d+)\]$")


def _strings(values: Any) -> list[str]:
    return [str(v) for v in np.asarray(values).ravel()]


def _preview(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


@xr.register_dataset_accessor("review")
class ReviewAccessor:
    """Analysis of a result Dataset (DESIGN.md schema): ``ds.review.<method>``.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`pipeline.evaluate` or :func:`pipeline.open_results`
        (lazy Dask-backed stores work; only the small per-image tables and the
        merged histograms are computed).

    Raises
    ------
    ValueError
        On first use of ``ds.review`` when ``ds`` lacks the result schema.

    Examples
    --------
    >>> import numpy as np, pipeline as sp
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 256, (4, 48, 48), dtype=np.uint8)
    >>> y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    >>> ds = sp.evaluate(x, y, regions="2x2")
    >>> lowest = int(np.argmin(ds.ssim.sel(region="all").values))
    >>> ds.review.worst(1).index[0] == str(lowest)
    True
    """

    def __init__(self, ds: xr.Dataset) -> None:
        from pipeline.report import _check_schema

        _check_schema(ds)
        self._ds = ds

    # -- lookups ---------------------------------------------------------------

    @property
    def image_ids(self) -> list[str]:
        """The pair ids as strings, in Dataset order."""
        return _strings(self._ds[IMAGE].values)

    @property
    def regions(self) -> list[str]:
        """The region names, ``all`` first."""
        return _strings(self._ds[REGION].values)

    def ok(self) -> np.ndarray:
        """Boolean mask over ``image``: status ``ok`` and a finite score."""
        status = np.asarray(_strings(self._ds[STATUS].values), dtype=object)
        scores = np.asarray(self._ds[SSIM].sel({REGION: ALL_REGION}).values, dtype=np.float64)
        return (status == STATUS_OK) & np.isfinite(scores)

    def position(self, image: str | int) -> int:
        """Integer position of a pair given by id (``str``) or position (``int``).

        Raises
        ------
        KeyError
            An id that is not in the Dataset (the message lists a few valid ids).
        IndexError
            A position out of range.
        TypeError
            Neither a string nor an integer.
        """
        ids = self.image_ids
        if isinstance(image, bool) or not isinstance(image, str | int | np.integer):
            raise TypeError(
                f"image must be an id (str) or a position (int) (got {type(image).__name__})"
            )
        if isinstance(image, str):
            if image in ids:
                return ids.index(image)
            raise KeyError(f"image {image!r} is not in the results; valid ids: {_preview(ids)}")
        n = len(ids)
        if not -n <= int(image) < n:
            raise IndexError(
                f"image position {int(image)} is out of range for {n} pairs "
                f"(valid: {-n}..{n - 1} or an id among {_preview(ids)})"
            )
        return int(image) % n

    def _region(self, region: str) -> str:
        if region not in self.regions:
            raise KeyError(
                f"region {region!r} is not in the results; valid regions: "
                f"{_preview(self.regions, 8)}"
            )
        return region

    def _edges(self) -> np.ndarray:
        ds = self._ds
        if BIN_LOWER in ds.coords and BIN_UPPER in ds.coords:
            upper = np.asarray(ds[BIN_UPPER].values, dtype=np.float64)
            return np.append(np.asarray(ds[BIN_LOWER].values, dtype=np.float64), upper[-1])
        return np.linspace(-1.0, 1.0, ds.sizes[BIN] + 1)

    # -- tables ----------------------------------------------------------------

    def summary(self, *, worst: int = 5) -> dict[str, Any]:
        """Counts, mean scores, map quantiles, worst pairs (:func:`pipeline.summary.summarize`).

        Parameters
        ----------
        worst : int
            How many of the lowest-scoring pairs to list.

        Returns
        -------
        dict
            JSON-safe; keys described in :func:`pipeline.summary.summarize`
            (``pairs``, ``ok``, ``failed``, ``pending``, ``mean``, ``quantiles``,
            ``regions``, ``worst``, ...).

        Examples
        --------
        >>> import numpy as np, pipeline as sp
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)
        >>> sp.evaluate(x, x).review.summary()["ok"]
        2
        """
        from pipeline.summary import summarize

        return summarize(self._ds, worst=worst)

    def _table(self, order: np.ndarray, region: str) -> pd.DataFrame:
        import pandas as pd

        ds = self._ds
        ids = self.image_ids
        columns: dict[str, Any] = {"position": order}
        for name in (SSIM, *_COMPONENTS):
            values = np.asarray(ds[name].sel({REGION: region}).values, dtype=np.float64)
            columns[name] = values[order]
        others = [r for r in self.regions if r != ALL_REGION]
        if region == ALL_REGION and others:
            table = np.asarray(ds[SSIM].sel({REGION: others}).values, dtype=np.float64)[order]
            finite = np.isfinite(table).any(axis=1)
            lowest = np.argmin(np.where(np.isfinite(table), table, np.inf), axis=1)
            columns["worst_region"] = [
                others[j] if has else None for j, has in zip(lowest, finite, strict=True)
            ]
        columns[REFERENCE] = np.asarray(_strings(ds[REFERENCE].values), dtype=object)[order]
        columns[GENERATED] = np.asarray(_strings(ds[GENERATED].values), dtype=object)[order]
        frame = pd.DataFrame(columns, index=pd.Index([ids[k] for k in order], name=IMAGE))
        frame.attrs["region"] = region
        return frame

    def _ranked(self, k: int, region: str, by: str, descending: bool) -> pd.DataFrame:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer (got {k!r})")
        if by not in FLOAT_STATISTICS:
            raise ValueError(f"by must be one of {', '.join(FLOAT_STATISTICS)} (got {by!r})")
        region = self._region(region)
        scores = np.asarray(self._ds[by].sel({REGION: region}).values, dtype=np.float64)
        usable = np.flatnonzero(self.ok() & np.isfinite(scores))
        key = -scores[usable] if descending else scores[usable]
        order = usable[np.argsort(key, kind="stable")][: int(k)]
        return self._table(order, region)

    def worst(self, k: int = 5, *, region: str = ALL_REGION, by: str = SSIM) -> pd.DataFrame:
        """The ``k`` lowest-scoring successful pairs, lowest first.

        Parameters
        ----------
        k : int
            How many pairs.
        region : str
            Rank by the score in this region (default ``all``: the standard score).
        by : str
            The statistic to rank by (``ssim``, ``luminance``, ``contrast``,
            ``structure``, ``ssim_min``, ...).

        Returns
        -------
        pandas.DataFrame
            Indexed by image id: ``position``, ``ssim``, ``luminance``,
            ``contrast``, ``structure`` in ``region``, ``worst_region`` (the
            region of lowest SSIM, when ranking on ``all`` with regions),
            ``reference`` and ``generated``. Failed pairs are left out.

        Examples
        --------
        >>> import numpy as np, pipeline as sp
        >>> rng = np.random.default_rng(0)
        >>> x = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
        >>> y = x.copy(); y[1] = 255 - y[1]
        >>> sp.evaluate(x, y).review.worst(1).index.tolist()
        ['1']
        """
        return self._ranked(k, region, by, descending=False)

    def best(self, k: int = 5, *, region: str = ALL_REGION, by: str = SSIM) -> pd.DataFrame:
        """The ``k`` highest-scoring successful pairs, highest first (see :meth:`worst`).

        Examples
        --------
        >>> import numpy as np, pipeline as sp
        >>> rng = np.random.default_rng(0)
        >>> x = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
        >>> y = 255 - x; y[2] = x[2]
        >>> sp.evaluate(x, y).review.best(1).index.tolist()
        ['2']
        """
        return self._ranked(k, region, by, descending=True)

    def quantile(
        self,
        q: float | Sequence[float],
        *,
        region: str = ALL_REGION,
        by_image: bool = False,
    ) -> xr.DataArray:
        """Quantiles of the SSIM-map values from the merged histograms.

        The histograms of the successful pairs are summed (``by_image=False``) and
        the quantile is interpolated linearly inside the bin that holds it
        (:func:`pipeline.summary.histogram_quantiles`, the same numbers as
        :meth:`summary`). Resolution: one bin width, ``2 / hist_bins`` (0.02 with
        the default 100 bins): the answer lies in the bin of the inverted-CDF
        sample quantile (``numpy.quantile(..., method="inverted_cdf")``). Raise
        ``hist_bins`` for finer quantiles.

        Parameters
        ----------
        q : float or sequence of float
            Levels in [0, 1].
        region : str
            Region whose pixels are counted (default ``all``).
        by_image : bool
            One quantile per pair instead of one over all pixels of all pairs
            (lazy for Dask-backed results).

        Returns
        -------
        xarray.DataArray
            0-d for a scalar ``q``, else with a ``quantile`` dimension; with
            ``by_image`` also an ``image`` dimension.

        Raises
        ------
        ValueError
            A level outside [0, 1].

        Examples
        --------
        >>> import numpy as np, pipeline as sp
        >>> rng = np.random.default_rng(0)
        >>> x = rng.integers(0, 256, (2, 64, 64), dtype=np.uint8)
        >>> y = np.clip(x + rng.normal(0, 30, x.shape), 0, 255).astype(np.uint8)
        >>> ds = sp.evaluate(x, y)
        >>> bool(-1 <= float(ds.review.quantile(0.5)) <= 1)
        True
        """
        levels = np.asarray(q, dtype=np.float64)
        if levels.ndim > 1 or not np.all((levels >= 0) & (levels <= 1)):
            raise ValueError(f"q must be a level or a list of levels in [0, 1] (got {q!r})")
        region = self._region(region)
        ds = self._ds.sel({REGION: region})
        if not by_image:
            ds = ds.isel({IMAGE: np.flatnonzero(self.ok())})
        edges = self._edges()
        hist = ds[SSIM_HIST].sum(IMAGE) if not by_image else ds[SSIM_HIST]

        def quantiles(counts: np.ndarray) -> np.ndarray:
            return np.asarray(histogram_quantiles(counts, edges, levels.reshape(-1).tolist()))

        result = xr.apply_ufunc(
            quantiles,
            hist,
            input_core_dims=[[BIN]],
            output_core_dims=[[QUANTILE]],
            vectorize=True,
            dask="parallelized",
            output_dtypes=[np.float64],
            dask_gufunc_kwargs={"output_sizes": {QUANTILE: levels.size}},
        )
        result = result.assign_coords({QUANTILE: levels.reshape(-1)})
        result = result.drop_vars([BIN_LOWER, BIN_UPPER], errors="ignore")
        result.attrs = {"resolution": float(np.max(np.diff(edges)))}
        result.name = f"{SSIM}_quantile"
        return result.isel({QUANTILE: 0}) if levels.ndim == 0 else result

    def compare(
        self,
        other: xr.Dataset,
        *,
        names: tuple[str, str] = ("a", "b"),
        variable: str = SSIM,
        check_params: bool = True,
    ) -> xr.Dataset:
        """Two models evaluated on the same references: differences, winners, paired tests.

        Pairs are aligned on ``image`` (the ids both results share, in this
        Dataset's order) and on the regions both have. Pairs that failed in either
        run are NaN and left out of the statistics.

        Parameters
        ----------
        other : xarray.Dataset
            The second model's results.
        names : (str, str)
            Labels of this Dataset's model and ``other``'s, used in ``winner``.
        variable : str
            The statistic compared (default ``ssim``).
        check_params : bool
            Refuse results computed with different SSIM parameters.

        Returns
        -------
        xarray.Dataset
            Over ``(image, region)``: ``a``, ``b`` (the scores), ``difference``
            (``a - b``), ``winner`` (a name, ``"tie"`` or ``""`` when a score is
            missing). Over ``region``: ``n_pairs``, ``mean_difference``,
            ``std_difference`` (ddof 1), ``wins_a``, ``wins_b``, ``ties``,
            ``t_statistic`` and ``p_value`` of the paired two-sided t-test.
            attrs: ``names``, ``variable``, ``same_references``.

        Raises
        ------
        TypeError
            ``other`` is not a Dataset.
        ValueError
            No image id in common, different SSIM parameters, or a bad ``variable``.

        Examples
        --------
        >>> import numpy as np, pipeline as sp
        >>> rng = np.random.default_rng(0)
        >>> x = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
        >>> noisy = lambda s: np.clip(x + rng.normal(0, s, x.shape), 0, 255).astype(np.uint8)
        >>> result = sp.evaluate(x, noisy(5)).review.compare(sp.evaluate(x, noisy(40)))
        >>> int(result.wins_a.sel(region="all"))
        3
        """
        if not isinstance(other, xr.Dataset):
            raise TypeError(
                f"other must be an xarray.Dataset of results (got {type(other).__name__})"
            )
        theirs = other.review
        if variable not in FLOAT_STATISTICS:
            raise ValueError(
                f"variable must be one of {', '.join(FLOAT_STATISTICS)} (got {variable!r})"
            )
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(f"names must be two different labels (got {names!r})")
        if check_params:
            differ = [
                f"{key}: {self._ds.attrs.get(key)!r} vs {other.attrs.get(key)!r}"
                for key in SCORE_ATTRS
                if self._ds.attrs.get(key) != other.attrs.get(key)
            ]
            if differ:
                raise ValueError(
                    "the results were computed with different SSIM settings ("
                    + "; ".join(differ)
                    + "); their scores are not comparable (check_params=False to compare anyway)"
                )
        ours_ids, their_ids = self.image_ids, theirs.image_ids
        lookup = {name: k for k, name in enumerate(their_ids)}
        shared = [name for name in ours_ids if name in lookup]
        if not shared:
            raise ValueError(
                "the two results share no image id, so nothing can be compared: this one has "
                f"{_preview(ours_ids, 3)}, other has {_preview(their_ids, 3)}; compare results "
                "evaluated on the same references"
            )
        regions = [r for r in self.regions if r in set(theirs.regions)]
        index_a = [ours_ids.index(name) for name in shared]
        index_b = [lookup[name] for name in shared]
        a = self._ds.isel({IMAGE: index_a})
        b = other.isel({IMAGE: index_b})
        score_a = np.asarray(a[variable].sel({REGION: regions}).values, dtype=np.float64)
        score_b = np.asarray(b[variable].sel({REGION: regions}).values, dtype=np.float64)
        score_a[~self.ok()[index_a]] = np.nan
        score_b[~theirs.ok()[index_b]] = np.nan
        out = xr.Dataset(
            {"a": ((IMAGE, REGION), score_a), "b": ((IMAGE, REGION), score_b)},
            coords={IMAGE: a[IMAGE].values, REGION: np.asarray(regions, dtype=object)},
        )
        difference = score_a - score_b
        out["difference"] = ((IMAGE, REGION), difference)
        winner = np.where(difference > 0, names[0], np.where(difference < 0, names[1], "tie"))
        winner = np.where(np.isfinite(difference), winner, "")
        out["winner"] = ((IMAGE, REGION), winner.astype(object))
        for key, value in _paired_statistics(difference).items():
            out[key] = ((REGION,), value)
        out.attrs.update(
            names=list(names),
            variable=variable,
            same_references=_strings(a[REFERENCE].values) == _strings(b[REFERENCE].values),
        )
        return out

    # -- figures ---------------------------------------------------------------

    def plot_hist(self, image: str | int | None = None) -> Figure:
        """Distribution of SSIM-map values (merged histograms) next to the image scores.

        Parameters
        ----------
        image : str or int, optional
            Only this pair (default: every successful pair).

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import numpy as np, pipeline as sp
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)
        >>> type(sp.evaluate(x, 255 - x).review.plot_hist()).__name__
        'Figure'
        """
        from pipeline.report import _histogram_figure

        ok = self.ok()
        if image is None:
            return _histogram_figure(self._ds, ok)
        k = self.position(image)
        return _histogram_figure(self._ds.isel({IMAGE: [k]}), ok[[k]])

    def plot_regions(self, image: str | int | None = None) -> Figure:
        """Mean SSIM per region: a heatmap for grid regions, bars for label regions.

        Parameters
        ----------
        image : str or int, optional
            Show this pair beside the mean of all pairs (grids) or alone (labels);
            default: the mean of all pairs and the four worst pairs.

        Returns
        -------
        matplotlib.figure.Figure

        Raises
        ------
        ValueError
            The results have no region besides ``all``.

        Examples
        --------
        >>> import numpy as np, pipeline as sp
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)
        >>> type(sp.evaluate(x, x, regions="2x2").review.plot_regions(0)).__name__
        'Figure'
        """
        from pipeline.report import _grid_shape, _region_bars, _region_figure, _WorstPair

        others = [r for r in self.regions if r != ALL_REGION]
        if not others:
            raise ValueError(
                "the results have no region besides 'all'; evaluate with regions='4x4' "
                "(a grid), '256px' (tiles) or 'labels' (a label mask)"
            )
        ok = self.ok()
        if image is None:
            pairs = self.worst(4) if ok.any() else None
            positions = [] if pairs is None else [int(p) for p in pairs["position"]]
        else:
            positions = [self.position(image)]
        if image is not None and _grid_shape(others) is None:
            k = positions[0]
            values = np.asarray(self._ds[SSIM].sel({REGION: others}).values[k], dtype=np.float64)
            bars = _region_bars(others, values)
            bars.axes[0].set_title(f"SSIM per region: {self.image_ids[k]}")
            bars.axes[0].set_xlabel("mean SSIM in region")
            return bars
        scores = np.asarray(self._ds[SSIM].sel({REGION: ALL_REGION}).values, dtype=np.float64)
        references = _strings(self._ds[REFERENCE].values)
        generated = _strings(self._ds[GENERATED].values)
        pairs_shown = [
            _WorstPair(self.image_ids[k], references[k], generated[k], float(scores[k]))
            for k in positions
        ]
        figure = _region_figure(self._ds, ok, pairs_shown)
        assert figure is not None  # regions besides 'all' exist (checked above)
        return figure

    def show_pair(
        self,
        image: str | int,
        *,
        maps: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        reference: Any = None,
        generated: Any = None,
    ) -> Figure:
        """Reference, generated and SSIM map of one pair; l, c, s maps when available.

        Maps come, in this order, from ``maps``; from the maps the run saved
        (``save_maps=True``: the store's ``maps`` group or ``maps_output``); or
        are recomputed with :func:`pipeline.ssim` and the parameters in the attrs
        from the images: ``reference``/``generated`` when given, else the files
        (folders) or Zarr arrays (stacks) the ``reference``/``generated``
        coordinates name. In-memory inputs cannot be found again: pass them.

        Parameters
        ----------
        image : str or int
            Pair id or position.
        maps : path or mapping, optional
            A Zarr group of maps (arrays ``ssim``, ``luminance``, ... shaped
            ``(image, y, x)``), or a mapping of such arrays.
        reference, generated : array, optional
            The images evaluated: the whole stack as passed to ``evaluate`` or
            this pair's image.

        Returns
        -------
        matplotlib.figure.Figure
            The subplot titles say where the maps came from.

        Examples
        --------
        >>> import numpy as np, pipeline as sp
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)
        >>> y = 255 - x
        >>> figure = sp.evaluate(x, y).review.show_pair(1, reference=x, generated=y)
        >>> figure.axes[2].get_title().startswith("SSIM map (recomputed)")
        True
        """
        from pipeline.report import _display, _new_figure

        k = self.position(image)
        ids = self.image_ids
        *images, found, source = self.pair_data(
            k, maps=maps, reference=reference, generated=generated
        )
        score = float(self._ds[SSIM].sel({REGION: ALL_REGION}).values[k])
        components = all(name in found for name in _COMPONENTS)
        rows = 2 if components else 1
        figure = _new_figure(11, 3.4 * rows)
        axes = np.asarray(figure.subplots(rows, 3, squeeze=False))
        names = _strings(self._ds[REFERENCE].values[k]) + _strings(self._ds[GENERATED].values[k])
        for axis, side, picture, name in zip(
            axes[0, :2], ("reference", "generated"), images, names, strict=True
        ):
            if picture is None:
                axis.text(
                    0.5, 0.5, f"{side} not available\n(pass {side}=)", ha="center", va="center"
                )
            else:
                shown, cmap = _display(picture)
                axis.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0)
            axis.set_title(f"{side}\n{Path(name).name}", fontsize=9)
            axis.set_axis_off()
        panels = [(axes[0, 2], SSIM, f"SSIM map ({source}), score {score:.3f}")]
        if components:
            panels += [
                (axes[1, j], name, f"{name} ({source})") for j, name in enumerate(_COMPONENTS)
            ]
        for axis, name, title in panels:
            axis.set_axis_off()
            axis.set_title(title, fontsize=9)
            if name not in found:
                axis.text(0.5, 0.5, "SSIM map not available", ha="center", va="center")
                continue
            values = found[name]
            # SSIM on the scale that makes maps comparable; l, c, s stretched, as l is
            # usually within a few percent of 1 and would show as one flat colour.
            low = min(0.0, float(np.nanmin(values))) if name == SSIM else float(np.nanmin(values))
            low = min(low, 1.0 - 1e-3)
            mappable = axis.imshow(values, cmap="magma", vmin=low, vmax=1.0)
            figure.colorbar(mappable, ax=axis, shrink=0.85)
        figure.suptitle(f"pair {ids[k]!r}")
        return figure

    def pair_data(
        self,
        image: str | int,
        *,
        maps: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        reference: Any = None,
        generated: Any = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, np.ndarray], str]:
        """The images and maps of one pair: ``(reference, generated, maps, source)``.

        ``maps`` holds whichever of ``ssim``, ``luminance``, ``contrast`` and
        ``structure`` were found (per-channel maps averaged over channels, as the
        engine reduces them); ``source`` is ``"saved"``, ``"recomputed"`` or
        ``"unavailable"``. Where each comes from is described in :meth:`show_pair`,
        which draws them; the HTML report uses the same lookup.
        """
        k = self.position(image)
        ref_image, gen_image = (
            self._source_image(k, given, side)
            for given, side in ((reference, REFERENCE), (generated, GENERATED))
        )
        found, source = self._saved_maps(k, maps)
        if not found and ref_image is not None and gen_image is not None:
            found, source = self._recompute(ref_image, gen_image), "recomputed"
        return ref_image, gen_image, found, source

    # -- map and image sources ---------------------------------------------------

    def _store_path(self) -> Path | None:
        source = self._ds.encoding.get("source")
        return Path(source) if source and Path(source).is_dir() else None

    def _maps_locations(self) -> list[Path]:
        config = self._ds.attrs.get("config")
        paths: list[Path] = []
        if self._ds.attrs.get("maps_output"):
            paths.append(Path(str(self._ds.attrs["maps_output"])))
        if isinstance(config, str):
            try:
                maps_output = json.loads(config).get("maps_output")
            except (ValueError, AttributeError):
                maps_output = None
            if maps_output:
                paths.append(Path(str(maps_output)))
        store = self._store_path()
        if store is not None:
            paths.append(store / "maps")
        return [p for p in paths if p.is_dir()]

    def _store_position(self, k: int) -> int:
        """Position of pair ``k`` in the store the maps were written beside."""
        store = self._store_path()
        if store is None:
            return k
        stored = _strings(xr.open_zarr(store, consolidated=False)[IMAGE].values)
        wanted = self.image_ids[k]
        return stored.index(wanted) if wanted in stored else k

    def _saved_maps(
        self, k: int, maps: str | os.PathLike[str] | Mapping[str, Any] | None
    ) -> tuple[dict[str, np.ndarray], str]:
        import zarr

        if maps is not None and not isinstance(maps, str | os.PathLike | Mapping):
            raise TypeError(
                f"maps must be a Zarr group path or a mapping of arrays (got {type(maps).__name__})"
            )
        if isinstance(maps, Mapping):
            groups: list[tuple[Any, int]] = [(maps, k)]
        else:
            paths = [Path(maps)] if maps is not None else self._maps_locations()
            if maps is not None and not Path(maps).is_dir():
                raise FileNotFoundError(f"maps path {str(maps)!r} is not a Zarr group folder")
            position = k if maps is not None else self._store_position(k)
            groups = [(zarr.open_group(str(p), mode="r"), position) for p in paths]
        for group, position in groups:
            found = {}
            for name in _MAP_NAMES:
                if name in group and group[name].shape[0] > position:
                    values = np.asarray(group[name][position], dtype=np.float64)
                    found[name] = values.mean(axis=-1) if values.ndim == 3 else values
            if SSIM in found:
                return found, "saved"
        return {}, "unavailable"

    def _source_image(self, k: int, given: Any, side: str) -> np.ndarray | None:
        sources = self._sources()
        shape = sources.get("shape")
        channel_axis = sources.get("channel_axis")
        if given is not None:
            picture = np.asarray(given)
            stack = isinstance(shape, list) and list(picture.shape) == shape
            if stack and len(picture.shape) - (channel_axis is not None) == 3:
                picture = picture[k]
                if channel_axis is not None:
                    axis = channel_axis if channel_axis < 0 else channel_axis - 1
                    picture = np.moveaxis(picture, axis, -1)
            return picture
        name = _strings(self._ds[side].values[k])[0]
        if Path(name).is_file():
            from pipeline.report import _load_image

            return _load_image(name)
        match = _STACK_NAME.match(name)
        if match and Path(match["path"]).is_dir():
            import zarr

            try:
                array = zarr.open_array(match["path"], mode="r")
            except (OSError, ValueError, KeyError, TypeError):
                return None
            picture = np.asarray(array[int(match["index"])])
            if channel_axis is not None:
                axis = channel_axis if channel_axis < 0 else channel_axis - 1
                picture = np.moveaxis(picture, axis, -1)
            return picture
        return None

    def _sources(self) -> dict[str, Any]:
        text = self._ds.attrs.get("sources")
        try:
            value = json.loads(text) if isinstance(text, str) else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def _recompute(self, reference: np.ndarray, generated: np.ndarray) -> dict[str, np.ndarray]:
        import pipeline
        from pipeline.report import _SSIM_PARAMS

        attrs = self._ds.attrs
        params = {
            name: attrs[f"ssim_{name}"]
            for name in _SSIM_PARAMS
            if attrs.get(f"ssim_{name}") is not None
        }
        data_range = attrs.get("data_range")
        coloured = reference.ndim == 3
        color_mode = str(attrs.get("color_mode", "channels"))
        result = pipeline.ssim(
            reference,
            generated,
            data_range=float(data_range) if isinstance(data_range, int | float) else None,
            profile=str(attrs.get("profile", "wang2004")),
            channel_axis=-1 if coloured else None,
            color_mode=color_mode if coloured and color_mode != "grey" else "channels",
            full=True,
            **params,
        )
        assert isinstance(result, tuple)  # full=True returns (score, maps)
        out = {}
        for name in _MAP_NAMES:
            values = np.asarray(result[1][name], dtype=np.float64)
            # Per-channel maps: their mean, as the engine stores them.
            out[name] = values.mean(axis=-1) if values.ndim == 3 else values
        return out


def _paired_statistics(difference: np.ndarray) -> dict[str, np.ndarray]:
    """Per-column paired statistics of ``(pairs, regions)`` differences (NaN = missing)."""
    from scipy import stats

    finite = np.isfinite(difference)
    n = finite.sum(axis=0)
    values = np.where(finite, difference, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=0) / n
        squares = np.where(finite, (difference - mean) ** 2, 0.0).sum(axis=0)
        std = np.sqrt(squares / (n - 1))
        t = mean / (std / np.sqrt(n))
    std = np.where(n >= 2, std, np.nan)
    # A zero spread with a non-zero mean is a certain difference: t infinite, p 0.
    t = np.where(n >= 2, t, np.nan)
    p = np.where(
        np.isnan(t), np.nan, 2.0 * stats.t.sf(np.abs(np.nan_to_num(t)), np.maximum(n - 1, 1))
    )
    p = np.where(np.isinf(t), 0.0, p)
    return {
        "n_pairs": n,
        "mean_difference": np.where(n > 0, mean, np.nan),
        "std_difference": std,
        "wins_a": (finite & (difference > 0)).sum(axis=0),
        "wins_b": (finite & (difference < 0)).sum(axis=0),
        "ties": (finite & (difference == 0)).sum(axis=0),
        "t_statistic": t,
        "p_value": p,
    }
