"""The ASGI application uvicorn serves (``downsync api``)."""

from api_shim.app import create_app

app = create_app()
