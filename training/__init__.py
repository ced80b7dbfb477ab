"""Training and evaluating the demo model (`python -m training.train`): a tool, not part of the
server, which never imports it; it renders its data through the server's own path."""
