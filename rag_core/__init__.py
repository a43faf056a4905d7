"""PolicyPal's engine: load, chunk, embed, store and search company documents. No Streamlit here."""

from rag_core.config import Settings

__all__ = ["Settings"]
