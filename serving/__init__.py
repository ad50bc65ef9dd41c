"""dialab's thin HTTP server: Rasa's server API over export bundles (see ``serving.app``).

``python -m serving --nlu BUNDLE [--policy BUNDLE]`` runs it; ``create_app(ServerSettings(...))``
builds the FastAPI app in Python; ``dialab shell`` chats in the terminal. Importing this package
imports nothing heavy: the models load in :func:`serving.app.create_app`.
"""
