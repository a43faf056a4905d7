"""Plotly figures of the analysis and evaluation numbers (rag_core.maps, rag_core.evaluation).

Every string from a document is HTML-escaped before it reaches a figure: plotly renders tags in hover
text and labels, and document text and names are data written by others.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from rag_core.display import short_name
from rag_core.evaluation import EvalReport
from rag_core.maps import EmbeddingMap, QueryView
from rag_core.types import ChunkRow, FloatArray, Hit, Mode

HOVER_CHARS = 150


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
) -> go.Figure:
    """Scatter (WebGL) of all chunks coloured by document, the query as a star, its hits ringed."""
    fig = go.Figure()
    if color_values is None:
        for doc in emap.documents:
            idx = [i for i, c in enumerate(emap.chunks) if c.document == doc]
            fig.add_trace(
                go.Scattergl(
                    x=emap.coords[idx, 0],
                    y=emap.coords[idx, 1],
                    mode="markers",
                    name=short_name(doc),
                    marker={"size": 6, "opacity": 0.75},
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
                hovertext=[hover_text(c) for c in emap.chunks],
                hoverinfo="text",
            )
        )
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
    fig.update_layout(
        height=600,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.05},
        xaxis={"showticklabels": False, "title": None},
        yaxis={"showticklabels": False, "title": None},
        title={"text": f"{emap.method.upper()} map of {len(emap.chunks)} chunks"},
    )
    return fig


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
    short = [html.escape(short_name(n, 28)) for n in labels]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=short,
            y=short,
            colorscale="Blues",
            text=np.round(matrix, 2),
            texttemplate="%{text}",
            hovertemplate="%{y} ↔ %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=max(300, 40 * len(labels) + 150),
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
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
    fig.update_layout(
        barmode="group",
        height=380,
        yaxis={"range": [0, 1.05]},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title={"text": "Retrieval quality by mode"},
    )
    return fig


def query_map_figure(view: QueryView) -> go.Figure:
    """The map of a `QueryView`: chunks coloured as asked, the query as a star, its top-k ringed."""
    return map_figure(view.emap, view.query, view.query_xy, view.hits, view.colour_values, view.colour_label)
