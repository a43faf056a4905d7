"""PolicyPal: the Streamlit entry point (router and frame only)."""

import streamlit as st

st.set_page_config(page_title="PolicyPal", page_icon="📘", layout="wide")
st.title("PolicyPal")
st.info("The engine is ready from the command line: `python -m rag_core --help`. The pages are coming next.")
