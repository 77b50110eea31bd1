"""One module per tab: its handler, layout, wiring and presets together, a ``create(ui)`` that builds it
inside the page, and a ``__main__`` that serves it alone (``python -m diffusion_lab.tabs.generate``)."""
