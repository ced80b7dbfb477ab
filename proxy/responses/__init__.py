"""The Responses API (`/v1/responses`, issue 10): its response store and its reasoning sealer."""
