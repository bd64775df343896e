"""Frame sources for inference: what a `source=` names (paths), opening and reading cameras, files and streams with
reconnection (capture), a reader that decodes on a background thread (reader), several sources at once
(multisource), and images handed to the Python API (image_input)."""
