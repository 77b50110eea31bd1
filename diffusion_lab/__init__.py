"""Diffusion Lab, the Gradio app over ``ddpm``: one module per tab (``tabs/``), the pieces they share, and
the page's assets. ``demo.build_demo`` is the whole app; ``app.py`` at the repository root launches it.

    page.py      header + tabs + queue + launch          lab.py       models, Model box policy, UI
    inputs.py    coercion of values, readable errors    uploads.py   editors that take files; their values
    controls.py  sampler controls, editors               examples.py  example pictures, inpainting presets
    follow.py    controls that follow the Model box     streaming.py named outputs, stream a job, Stop
    runs.py      the scrubber's Run/Track data           assets/      scrubber HTML/CSS/JS, page CSS
"""
