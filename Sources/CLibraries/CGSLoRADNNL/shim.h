// oneDNN (Debian libdnnl-dev): bfloat16 matrix products on AMX / AVX512-BF16 for the opt-in bf16 precision.
#include <oneapi/dnnl/dnnl.h>
