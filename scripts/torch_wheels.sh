# Where torch's CPU wheel comes from (sourced by install.sh and lock.sh): this machine's wheel folder when it
# holds it, else PyTorch's own wheel page (PyPI has only the CUDA build of torch for Linux).
if compgen -G "/opt/wheels/torch-2.13.0+cpu-*.whl" >/dev/null; then
  torch_links=(--find-links /opt/wheels)
else
  torch_links=(--find-links https://download.pytorch.org/whl/torch/)
fi
