"""The Conversations API (/v1/conversations) and the `conversation` parameter of /v1/responses."""
