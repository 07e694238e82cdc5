"""HTTP edge of mixguard: app factory, OpenAI-compatible routes, auth, errors, settings, routing."""

import os

# Importing litellm otherwise fetches the model cost map from the internet at every start.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
