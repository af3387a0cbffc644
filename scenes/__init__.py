"""Test pictures for the digit models, and how results are scored against them.

- :mod:`.book`: the book's scenes (digits on a 28-px grid, black background).
- :mod:`.field`: pictures like a webcam gives: pages of digits (light paper with uneven lighting,
  or a dark background; blur, sensor noise, JPEG) and 640x480 photos of one digit.
- :mod:`.score`: matching detections to the truth (precision, recall).
- :mod:`.evaluate`: the models measured on all of them (``make field-eval``).
"""
