"""Every figure and widget, and how they are displayed: ``memory`` (memory over time), ``logs`` (skills,
correlation, the log filter), ``fleet`` (small multiples), ``widgets`` (the memory explorer),
``display`` (figures as embedded PNGs with alt text). They draw what other packages computed.
Import from the modules.
"""
