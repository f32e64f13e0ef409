"""The invoice templates: Jinja2 HTML, its stylesheet and the en/es labels (shipped as package data)."""
