"""``ds.review``: find out where and why generated images fail, from a result Dataset.

Importing :mod:`pipeline` registers an xarray Dataset accessor named ``review``
(a name no result variable uses)::

    ds = pipeline.open_results("results.zarr")   # lazy, Dask-backed
    ds.review.summary()          # counts, mean, quantiles, worst pairs
    ds.review.worst(5)           # the five lowest-scoring pairs, as a table
    ds.review.quantile(0.05)     # a quantile of every valid SSIM-map pixel
    ds.review.compare(other)     # two models on the same references
    ds.review.compare()          # a Dataset with a ``model`` dimension: rank its models
    ds.review.show_pair("a.png") # reference, generated, SSIM (and l, c, s) maps
    ds.review.show_pair("a.png", model="gan_b")  # the same, of one model of several
    ds.review.mean_map()         # the mean SSIM map of a size group (mean_maps setting)

Quantiles come from the merged ``ssim_hist`` histograms, interpolated linearly
inside the bin that holds the quantile; the whole map is never needed, but the
answer is exact only to the bin width (``2 / hist_bins``: 0.02 with the default
100 bins).

The figures are drawn by :mod:`pipeline.review.figures` (the report draws its own
with the same code) and are ``matplotlib.figure.Figure`` objects built on the Agg
canvas; matplotlib is imported only when a plot is asked for. Methods taking ``image`` accept the
pair's id (a string; for stacks the index as text also works) or its integer
position (negative counts from the end).

The methods delegate to :mod:`pipeline.review.tables`, :mod:`pipeline.review.comparison`,
:mod:`pipeline.review.plots` and :mod:`pipeline.review.maps`, which never import this module;
the summary and the figures read the results once, a batch of pairs at a time
(:func:`pipeline.results.summary.scan_results`): the histograms of a store opened
with :func:`pipeline.open_results` are never loaded whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.results.schema import ALL_REGION, SSIM, check_results
from pipeline.review import comparison as review_comparison
from pipeline.review import maps as review_maps
from pipeline.review import mean_maps as review_mean_maps
from pipeline.review import plots as review_plots
from pipeline.review import tables as review_tables
from pipeline.review.models import has_models, model_names, split_models
from pipeline.review.tables import preview_ids

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["ReviewAccessor"]


@xr.register_dataset_accessor("review")
class ReviewAccessor:
    """Analysis of a result Dataset (the README's result schema): ``ds.review.<method>``.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`pipeline.evaluate` or :func:`pipeline.open_results`
        (lazy Dask-backed stores work; only the small per-image tables and the
        merged histograms are computed).

    Raises
    ------
    ValueError
        On first use of ``ds.review`` when ``ds`` lacks the result schema; from
        the per-pair methods (all but :meth:`summary` and :meth:`compare`) of
        results with several models (a ``model`` dimension), naming how to select one.

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
        check_results(ds)
        self._ds = ds

    def _one_model(self) -> xr.Dataset:
        """The Dataset, refused with a clear error when it holds several models."""
        if has_models(self._ds):
            names = model_names(self._ds)
            raise ValueError(
                f"these results hold {len(names)} models ({preview_ids(names, 4)}): compare "
                "them with ds.review.compare(), or look at one with "
                f"ds.sel(model={names[0]!r}, drop=True).review"
            )
        return self._ds

    def _model_results(self, model: str | int | None, method: str) -> xr.Dataset:
        """One model's results for the pair and map methods: ``model`` picks it.

        With several models, ``model`` (a name or position) is that model's results as
        its own run would give them (attrs included: its saved maps' group); it is
        required there, and refused for results of one model.
        """
        if not has_models(self._ds):
            if model is not None:
                raise ValueError(
                    f"these results hold one model; model must be None (got {model!r})"
                )
            return self._ds
        runs = split_models(self._ds)
        names = [name for name, _ in runs]
        if model is None:
            raise ValueError(
                f"these results hold {len(names)} models ({preview_ids(names, 4)}): pass "
                f"model= (a name or position) to {method}, e.g. model={names[0]!r}"
            )
        if isinstance(model, str):
            if model not in names:
                raise ValueError(f"no model {model!r}; the results have {preview_ids(names, 8)}")
            return runs[names.index(model)][1]
        if (
            isinstance(model, int | np.integer)
            and not isinstance(model, bool)
            and -len(names) <= model < len(names)
        ):
            return runs[int(model)][1]
        raise ValueError(
            f"model must be a name or a position among {len(names)} models (got {model!r})"
        )

    # -- lookups ---------------------------------------------------------------

    @property
    def image_ids(self) -> list[str]:
        """The pair ids as strings, in Dataset order."""
        return review_tables.image_ids(self._ds)

    @property
    def regions(self) -> list[str]:
        """The region names, ``all`` first."""
        return review_tables.region_names(self._ds)

    def ok(self) -> np.ndarray:
        """Boolean mask over ``image``: status ``ok`` and a finite score."""
        return review_tables.ok_mask(self._one_model())

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
        return review_tables.image_position(self._one_model(), image)

    # -- tables ----------------------------------------------------------------

    def summary(self, *, worst: int = 5) -> dict[str, Any]:
        """Counts, mean scores, map quantiles, worst pairs (see ``results.summary.summarize``).

        Parameters
        ----------
        worst : int
            How many of the lowest-scoring pairs to list.

        Returns
        -------
        dict
            JSON-safe; keys described in :func:`pipeline.results.summary.summarize`
            (``pairs``, ``ok``, ``failed``, ``pending``, ``mean``, ``quantiles``,
            ``regions``, ``worst``, ...).

        Examples
        --------
        >>> import numpy as np, pipeline as sp
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)
        >>> sp.evaluate(x, x).review.summary()["ok"]
        2
        """
        from pipeline.results.summary import summarize

        return summarize(self._ds, worst=worst)

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
            ``structure``, ``ssim_min``, ``psnr``, ``mse``, ...). Worst means lowest,
            except for ``mse`` (highest first).

        Returns
        -------
        pandas.DataFrame
            Indexed by image id: ``position``, ``ssim``, ``luminance``,
            ``contrast``, ``structure``, ``mse``, ``psnr`` (dB; the last two when the
            results have them) in ``region``, ``worst_region`` (the
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
        return review_tables.ranked_pairs(self._one_model(), k, region, by, descending=False)

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
        return review_tables.ranked_pairs(self._one_model(), k, region, by, descending=True)

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
        (:func:`pipeline.results.summary.histogram_quantiles`, the same numbers as
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
        return review_tables.map_quantiles(self._one_model(), q, region=region, by_image=by_image)

    def compare(
        self,
        *others: xr.Dataset,
        names: Sequence[str] | None = None,
        variable: str = SSIM,
        check_params: bool = True,
        confidence: float = 0.95,
        resamples: int = 2000,
        seed: int = 0,
        disagreements: int = 10,
    ) -> xr.Dataset:
        """Models evaluated on the same references: rank them, test them, confront them.

        Two forms, chosen by what is compared:

        * **two single-model results** (``ds.review.compare(other)``, neither with a
          ``model`` dimension): the pair-by-pair table. Pairs are aligned on
          ``image`` (the ids both share, in this Dataset's order) and on the regions
          both have; pairs that failed in either run are NaN and left out of the
          statistics.
        * **several models** (this Dataset has a ``model`` dimension, or two or more
          ``others`` are given; a multi-model Dataset's models count one by one):
          the ranking by mean SSIM and mean PSNR with bootstrap confidence
          intervals over the references ok in every model, paired Wilcoxon and t
          tests between every pair of models on the references ok in both (with
          Holm's correction), the winner of each region and the references where
          the models disagree most (:mod:`pipeline.review.models` says why each
          method).

        Parameters
        ----------
        *others : xarray.Dataset
            Other models' results (none: compare this Dataset's own models).
        names : sequence of str, optional
            One label per model, in order (this Dataset's models first). Default:
            ``("a", "b")`` for two single-model results; otherwise the ``model``
            coordinate's names, and ``model-<k>`` (``k`` its position among all
            models) for a result without one.
        variable : str
            The statistic tested, whose region winners and disagreements are found
            (default ``ssim``; for ``mse`` lower wins). The ranking is always by
            SSIM and PSNR.
        check_params : bool
            Refuse results computed with different SSIM parameters.
        confidence : float
            Level of the ranking's intervals (several models).
        resamples : int
            Bootstrap resamples of the intervals (several models).
        seed : int
            Seed of the bootstrap's generator: the same call gives the same intervals.
        disagreements : int
            How many of the most-disagreeing references to list (several models).

        Returns
        -------
        xarray.Dataset
            Two single-model results: over ``(image, region)``, ``a``, ``b`` (the
            scores), ``difference`` (``a - b``), ``winner`` (a name, ``"tie"`` or
            ``""`` when a score is missing); over ``region``, ``n_pairs``,
            ``mean_difference``, ``std_difference`` (ddof 1), ``wins_a``,
            ``wins_b``, ``ties``, ``t_statistic`` and ``p_value`` of the paired
            two-sided t-test; attrs ``names``, ``variable``, ``same_references``.

            Several models: over ``model``, ``n_ok``, ``ssim_mean``,
            ``ssim_ci_low``, ``ssim_ci_high``, ``ssim_rank`` (1 = best) and the same
            four for ``psnr``; over ``model_pair`` (``"a vs b"``, coordinates
            ``model_a``, ``model_b``), ``n_pairs`` (ok in both), ``mean_difference``
            (a - b), ``wins_a``, ``wins_b``, ``wilcoxon_statistic``,
            ``wilcoxon_p``, ``wilcoxon_p_holm``, ``t_statistic``, ``t_p``,
            ``t_p_holm``, the same tests on PSNR prefixed ``psnr_`` (references
            whose PSNR is ``inf`` in either model left out, counted in
            ``psnr_n_infinite``); over ``(model, region)``, ``region_mean`` and over
            ``region``, ``region_winner``; over ``disagreement`` (rank 1 = largest
            spread; coordinate ``disagreement_image``), ``spread``, ``best_model``,
            ``worst_model``, and over ``(disagreement, model)``,
            ``disagreement_score`` and ``disagreement_position`` (the pair's
            position in that model's results). attrs: ``models``, ``variable``,
            ``n_shared`` (references ok in every model), ``n_ssim``, ``n_psnr``
            (references each ranking is over), ``confidence``, ``resamples``,
            ``seed``, ``interval``, ``correction``.

        Raises
        ------
        TypeError
            An ``other`` that is not a Dataset.
        ValueError
            One model only (no ``model`` dimension and nothing else given), no image
            id in common, no reference ok in every model, different SSIM
            parameters, names that are not one unique label per model, or a bad
            ``variable``, ``confidence``, ``resamples`` or ``disagreements``.

        Examples
        --------
        >>> import numpy as np, pipeline as sp
        >>> rng = np.random.default_rng(0)
        >>> x = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
        >>> noisy = lambda s: np.clip(x + rng.normal(0, s, x.shape), 0, 255).astype(np.uint8)
        >>> result = sp.evaluate(x, noisy(5)).review.compare(sp.evaluate(x, noisy(40)))
        >>> int(result.wins_a.sel(region="all"))
        3
        >>> runs = [sp.evaluate(x, noisy(s)) for s in (40, 5, 20)]
        >>> ranking = runs[0].review.compare(*runs[1:], names=["n40", "n5", "n20"])
        >>> ranking.ssim_rank.values.tolist()
        [3, 1, 2]
        """
        return review_comparison.compare(
            self._ds,
            others,
            names=names,
            variable=variable,
            check_params=check_params,
            confidence=confidence,
            resamples=resamples,
            seed=seed,
            disagreements=disagreements,
        )

    # -- mean maps -------------------------------------------------------------

    def mean_map(
        self, size_group: str | int = 0, component: str = SSIM, model: str | int | None = None
    ) -> xr.DataArray:
        """The mean map of one size group, cropped to the group's own map shape.

        Parameters
        ----------
        size_group : str or int
            The group's name (``"256x256x3"``) or position (default: the first).
        component : str
            ``"ssim"``, ``"luminance"``, ``"contrast"``, ``"structure"`` or
            ``"reference"`` (the mean reference image at the map's pixels).
        model : str or int, optional
            With several models: the model's name or position (default: every
            model, a leading ``model`` dimension).

        Returns
        -------
        xarray.DataArray
            ``(map_y, map_x)`` (``(model, map_y, map_x)`` for several models); pixel
            ``(i, j)`` is the window centred on image pixel ``(i + map_offset, j +
            map_offset)``. NaN where no pair was ``ok``.

        Raises
        ------
        ValueError
            The results have no mean maps, or no such group or component.

        Examples
        --------
        >>> import numpy as np, pipeline as sp
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)
        >>> sp.evaluate(x, x, mean_maps=True).review.mean_map().shape
        (22, 22)
        """
        return review_mean_maps.mean_map(self._ds, size_group, component, model)

    def plot_mean_map(self, model: str | int | None = None) -> Figure:
        """Per size group, the mean SSIM map over the mean reference image.

        With several models, one row per model and group (or ``model``'s only).

        Raises
        ------
        ValueError
            The results have no mean maps (``mean_maps`` off) or no ``ok`` pair.
        """
        return review_mean_maps.plot_mean_map(self._ds, model)

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
        return review_plots.plot_hist(self._one_model(), image)

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
        return review_plots.plot_regions(self._one_model(), image)

    def show_pair(
        self,
        image: str | int,
        *,
        model: str | int | None = None,
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
        Files that are gone, unreadable or no longer the data the run scored
        (their recomputed SSIM differs from the stored score) are not drawn: the
        panels say why. The SSIM map is drawn on the report's one colour scale,
        0 to 1 with values below 0 in blue, whatever the map holds.

        Parameters
        ----------
        image : str or int
            Pair id or position.
        model : str or int, optional
            With several models (a ``model`` dimension; required there): the model's
            name or position. Its saved maps are its own group of the maps store.
        maps : path or mapping, optional
            A Zarr group of maps (arrays ``ssim``, ``luminance``, ... shaped
            ``(image, y, x)``; with several models, the maps store or the model's
            group in it), or a mapping of such arrays.
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
        return review_plots.show_pair(
            self._model_results(model, "show_pair"),
            image,
            maps=maps,
            reference=reference,
            generated=generated,
        )

    def pair_data(
        self,
        image: str | int,
        *,
        model: str | int | None = None,
        maps: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        reference: Any = None,
        generated: Any = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, np.ndarray], str]:
        """The images and maps of one pair: ``(reference, generated, maps, source)``.

        ``maps`` holds whichever of ``ssim``, ``luminance``, ``contrast`` and
        ``structure`` were found (per-channel maps averaged over channels, as the
        engine reduces them); ``source`` is ``"saved"``, ``"recomputed"`` or
        ``"unavailable"``. Where each comes from, and ``model`` (several models), are
        described in :meth:`show_pair`, which draws them; the HTML report uses the same
        lookup.
        """
        return review_maps.pair_data(
            self._model_results(model, "pair_data"),
            image,
            maps=maps,
            reference=reference,
            generated=generated,
        )
