"""The same server as a Ray Serve application: an ingress over replicas that each run the engine.

    from loradock.serving.ray.app import RayOptions, build_app, run   # needs: pip install 'loradock[ray]'

`app.build(args)` is Ray's application builder for `serve run`. Importing this package does not import ray.
"""

from .errors import RayNotInstalledError, RayOptionsError, RayServingError

__all__ = ["RayNotInstalledError", "RayOptionsError", "RayServingError"]
