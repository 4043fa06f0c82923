"""Deployment: several MoCert instances behind HAProxy (``python -m deploy.several_instances``), and the HAProxy
configuration they run behind (``deploy/haproxy.cfg``). Not part of the installed package."""
