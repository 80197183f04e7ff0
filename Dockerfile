# bla-train on a CUDA machine: the README's steps on a CUDA base image.
#   docker build -t bla-train .
#   docker run --gpus all bla-train build/src/bla-train configs/mqar_attention.yaml
FROM nvidia/cuda:13.0.0-devel-ubuntu24.04

RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-pip git libsentencepiece-dev && rm -rf /var/lib/apt/lists/*
# PyTorch's wheel brings the LibTorch (with CUDA) that bla-train builds against.
RUN pip3 install --break-system-packages torch --index-url https://download.pytorch.org/whl/cu130

WORKDIR /opt/bla-train
COPY . .
RUN scripts/bootstrap.sh && scripts/build.sh
CMD ["scripts/test.sh"]
