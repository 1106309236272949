"""Reading a Chromium-family browser profile's IndexedDB offline (etl export --from PROFILE): see reader.py."""
