"""Plotly figures of the analysis and evaluation numbers (rag_core.maps, rag_core.evaluation).

Every string from a document is HTML-escaped before it reaches a figure: plotly renders tags in hover
text and labels, and document text and names are data written by others.

Why Dark24 for documents: a qualitative palette of 24 hues, in an order where neighbours contrast, so
two documents are always two clearly different colours (plotly's default cycle has 10, some close).
Plotly legends have no hover, so a legend entry carries the short name and every point's hover leads
with the full one.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative

from rag_core.compare import CompareReport
from rag_core.display import short_name
from rag_core.evaluation import EvalReport
from rag_core.map_questions import MapQuestion
from rag_core.maps import EmbeddingMap, QueryView
from rag_core.types import ChunkRow, FloatArray, Hit, Mode

HOVER_CHARS = 150
DOCUMENT_COLOURS: tuple[str, ...] = tuple(qualitative.Dark24)


def document_colours(documents: Sequence[str]) -> dict[str, str]:
    """A colour per document, cycling Dark24 in the order given (adjacent documents always differ)."""
    return {doc: DOCUMENT_COLOURS[i % len(DOCUMENT_COLOURS)] for i, doc in enumerate(documents)}


def hover_text(chunk: ChunkRow) -> str:
    """Hover label: document, page and the first characters, HTML-escaped (plotly renders tags)."""
    snippet = " ".join(chunk.text.split())
    if len(snippet) > HOVER_CHARS:
        snippet = snippet[:HOVER_CHARS] + "…"
    return f"{html.escape(chunk.document)} · page {chunk.page}<br>{html.escape(snippet)}"


def map_figure(
    emap: EmbeddingMap,
    query: str | None = None,
    query_xy: tuple[float, float] | None = None,
    hits: Sequence[Hit] = (),
    color_values: FloatArray | None = None,
    color_label: str = "score",
    questions: Sequence[MapQuestion] = (),
) -> go.Figure:
    """Scatter (WebGL) of all chunks coloured by document, the query as a star, its hits ringed, and
    employees' questions when given (asked ones as diamonds, refused ones as red crosses)."""
    fig = go.Figure()
    if color_values is None:
        colours = document_colours(emap.documents)
        for doc in emap.documents:
            idx = [i for i, c in enumerate(emap.chunks) if c.document == doc]
            fig.add_trace(
                go.Scattergl(
                    x=emap.coords[idx, 0],
                    y=emap.coords[idx, 1],
                    mode="markers",
                    name=html.escape(short_name(doc)),
                    marker={"size": 6, "opacity": 0.8, "color": colours[doc]},
                    hovertext=[hover_text(emap.chunks[i]) for i in idx],
                    hoverinfo="text",
                )
            )
    else:
        fig.add_trace(
            go.Scattergl(
                x=emap.coords[:, 0],
                y=emap.coords[:, 1],
                mode="markers",
                name="chunks",
                marker={
                    "size": 6,
                    "color": color_values,
                    "colorscale": "Viridis",
                    "showscale": True,
                    "colorbar": {"title": {"text": color_label}},
                },
                hovertext=[
                    f"{hover_text(c)}<br>{html.escape(color_label)}: {float(v):.3f}"
                    for c, v in zip(emap.chunks, color_values, strict=True)
                ],
                hoverinfo="text",
            )
        )
    add_questions(fig, questions)
    if query_xy is not None:
        pos = {c.chunk_id: i for i, c in enumerate(emap.chunks)}
        idx = [pos[h.chunk_id] for h in hits if h.chunk_id in pos]
        for i in idx:
            fig.add_trace(
                go.Scatter(
                    x=[query_xy[0], float(emap.coords[i, 0])],
                    y=[query_xy[1], float(emap.coords[i, 1])],
                    mode="lines",
                    line={"color": "rgba(220,40,40,0.5)", "width": 1},
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
        if idx:
            fig.add_trace(
                go.Scatter(
                    x=emap.coords[idx, 0],
                    y=emap.coords[idx, 1],
                    mode="markers+text",
                    name="top-k hits",
                    text=[str(r) for r in range(1, len(idx) + 1)],
                    textposition="top center",
                    marker={"size": 16, "symbol": "circle-open", "color": "crimson", "line": {"width": 2}},
                    hovertext=[hover_text(emap.chunks[i]) for i in idx],
                    hoverinfo="text",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=[query_xy[0]],
                y=[query_xy[1]],
                mode="markers",
                name="query",
                marker={"size": 20, "symbol": "star", "color": "gold", "line": {"width": 1, "color": "black"}},
                hovertext=[f"query: {html.escape(query or '')}"],
                hoverinfo="text",
            )
        )
    title = f"{emap.method.upper()} map of {len(emap.chunks)} chunks"
    if emap.placed:
        title += f" ({emap.placed} placed approximately)"
    fig.update_layout(
        height=600,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.05},
        xaxis={"showticklabels": False, "title": None},
        yaxis={"showticklabels": False, "title": None},
        title={"text": title},
    )
    return fig


def add_questions(fig: go.Figure, questions: Sequence[MapQuestion]) -> None:
    """Draw employees' questions on a map: asked ones as dark diamonds, refused ones as red crosses,
    and an orange hexagon around those far from any document (top-k hits are red circles); the question
    text on hover."""
    dot = {"size": 10, "line": {"width": 1, "color": "white"}}
    layers: list[tuple[str, list[MapQuestion], dict[str, object]]] = [
        ("asked questions", [q for q in questions if not q.refused], {**dot, "symbol": "diamond", "color": "#222222"}),
        ("refused questions", [q for q in questions if q.refused], {**dot, "symbol": "x", "color": "#d62728"}),
        (
            "far from any document",
            [q for q in questions if q.far],
            {"size": 20, "symbol": "hexagon-open", "color": "#ff7f0e", "line": {"width": 2}},
        ),
    ]
    for name, group, marker in layers:
        if group:
            fig.add_trace(
                go.Scatter(
                    x=[q.xy[0] for q in group],
                    y=[q.xy[1] for q in group],
                    mode="markers",
                    name=name,
                    marker=marker,
                    hovertext=[_question_hover(q) for q in group],
                    hoverinfo="text",
                )
            )


def _question_hover(q: MapQuestion) -> str:
    status = "refused" if q.refused else "answered"
    text = f"{'Refused' if q.refused else 'Asked'}: {html.escape(q.text)}"
    if q.nearest is None:
        return text
    where = "far from any document" if q.far else status
    return f"{text}<br>nearest passage similarity {q.nearest:.2f} ({where})"


def scores_figure(hits: Sequence[Hit]) -> go.Figure:
    """Horizontal bars of the top-k similarity scores (cosine, as everywhere), rank 1 on top."""
    labels = [f"[{h.rank}] {short_name(h.document, 30)} p{h.page}" for h in hits]
    fig = go.Figure(
        go.Bar(
            x=[h.score for h in hits],
            y=[html.escape(label) for label in labels],
            orientation="h",
            text=[f"{h.score:.3f}" for h in hits],
            textposition="auto",
            hovertext=[html.escape(" ".join(h.text.split())[:HOVER_CHARS]) for h in hits],
            hoverinfo="text",
        )
    )
    fig.update_layout(
        height=max(250, 45 * len(hits) + 80),
        yaxis={"autorange": "reversed"},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title={"text": "Top-k similarity"},
    )
    return fig


def heatmap_figure(labels: Sequence[str], matrix: FloatArray) -> go.Figure:
    """Document-by-document similarity: short names on the axes, two decimals in the cells, the full
    names and three decimals on hover."""
    short = [html.escape(short_name(n, 28)) for n in labels]
    full = [html.escape(n) for n in labels]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=short,
            y=short,
            colorscale="Blues",
            texttemplate="%{z:.2f}",
            customdata=[[f"{a} ↔ {b}" for b in full] for a in full],
            hovertemplate="%{customdata}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=max(300, 40 * len(labels) + 150),
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        yaxis={"autorange": "reversed"},  # the first document top left: the diagonal runs down
        title={"text": "Mean chunk similarity between documents"},
    )
    return fig


def metrics_figure(reports: Mapping[Mode, EvalReport]) -> go.Figure:
    """Grouped bars: hit@1, hit@3, hit@5 and MRR for each retrieval mode."""
    fig = go.Figure()
    for mode, r in reports.items():
        values = [r.hit_at[1], r.hit_at[3], r.hit_at[5], r.mrr]
        fig.add_trace(
            go.Bar(name=mode, x=["hit@1", "hit@3", "hit@5", "MRR"], y=values, text=[f"{v:.2f}" for v in values])
        )
    return _grouped(fig, "Retrieval quality by mode", 380)


def _grouped(fig: go.Figure, title: str, height: int) -> go.Figure:
    """Grouped bars of rates between 0 and 1, titled."""
    fig.update_layout(
        barmode="group",
        height=height,
        yaxis={"range": [0, 1.05]},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title={"text": title},
    )
    return fig


def compare_figure(report: CompareReport) -> go.Figure:
    """Grouped bars, one group per arm of a fine-tuning vs retrieval comparison: answer has the fact,
    answerable refused, uncovered refused (a missing rate, e.g. no uncovered questions, is left out)."""
    measures = (
        ("answer has the fact", "answer_contains"),
        ("answerable refused", "refused_answerable"),
        ("uncovered refused", "refused_uncovered"),
    )
    fig = go.Figure()
    for label, attr in measures:
        values = [getattr(a, attr) for a in report.arms]
        if all(v is None for v in values):
            continue
        fig.add_trace(
            go.Bar(
                name=label,
                x=[a.arm for a in report.arms],
                y=[v or 0.0 for v in values],
                text=["n/a" if v is None else f"{v:.2f}" for v in values],
            )
        )
    return _grouped(fig, "Fine-tuning vs retrieval, per arm", 400)


def query_map_figure(view: QueryView, questions: Sequence[MapQuestion] = ()) -> go.Figure:
    """The map of a `QueryView`: chunks coloured as asked, the query as a star, its top-k ringed, and
    employees' questions when given."""
    return map_figure(view.emap, view.query, view.query_xy, view.hits, view.colour_values, view.colour_label, questions)
