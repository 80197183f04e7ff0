# The profile's GPU rows grouped by kind (names matched as below); ran as
#   python3 by_kind.py profile_125m_bla.txt ../gpu_run_2026_12_07_f/profile_125m_attention.txt > profile_125m_by_kind.txt
import re,sys
def agg(path):
    cats={}
    rows=[]
    for line in open(path):
        m=re.match(r'\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+)\s+(.*)',line)
        if not m: continue
        ms,name=float(m.group(1)),m.group(4)
        rows.append((ms,name))
        n=name
        if 'nvjet' in n or 'gemm' in n or 'cublas' in n or 'cutlass' in n: c='matmuls'
        elif 'sdpa' in n or 'cudnn' in n: c='cuDNN attention'
        elif "swa_" in n: c="SWA kernels"
        elif "bla_c" in n: c="BLA kernels"
        elif 'rms_norm' in n: c='RMSNorm'
        elif 'swiglu' in n: c='SwiGLU'
        elif 'rotary' in n: c='rotary'
        elif 'head_loss' in n: c='LM head loss'
        elif 'multi_tensor_apply' in n: c='optimizer, clipping (multi-tensor)'
        elif 'copy' in n or 'Cat' in n: c='copies, casts, cats'
        elif 'add' in n.lower() and 'Functor' in n: c='adds'
        elif 'Fill' in n or 'Memset' in n: c='fills'
        else: c='other'
        cats[c]=cats.get(c,0)+ms
    tot=sum(cats.values())
    print(path, f"total {tot:.2f}")
    for c,v in sorted(cats.items(),key=lambda x:-x[1]): print(f"  {c:40s} {v:7.3f} {100*v/tot:5.1f}%")
for p in sys.argv[1:]: agg(p)
