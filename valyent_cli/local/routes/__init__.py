"""The sandbox's route handlers, one module per resource; `local/server.py` maps the paths to them and builds
the app. `common` holds what every handler uses."""
