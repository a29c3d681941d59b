"""`python -m bench.faces`: the face pipeline on real video (bench/RESULTS.md, "Faces").

Measures, on the real media (`../shared/media/`, or `$MER_MEDIA_DIR`): dlib's scores of true and
false faces (what `data.faces.min_score` rejects), the frame-to-frame shift of branch-B crops on a
still and on a talking face with `per_frame` and `per_clip` boxes, the face coverage of clips cut
across face and no-face footage and what `on_low_coverage` does with them, and prepare time per
clip with the landmark cache shared by two region policies or not. Modules: `media` (the real
media, clips cut into mer's layouts), `measure` (the measurements), `__main__` (options, table).
"""
