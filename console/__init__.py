"""The Streamlit compliance console; it arrives with the console issue."""
