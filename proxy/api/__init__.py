"""The HTTP surfaces, each a thin translation over the core: its wire schema into a
`GenerationRequest`, the core's neutral events into its own objects and SSE events, and its
own error shape. Nothing below this package imports a surface's models."""
