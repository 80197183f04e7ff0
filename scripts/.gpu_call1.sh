set -u
mkdir -p $OUT/c1
export BUILD_DIR=build-gpu
source scripts/gpu_build.sh
gpu_build $OUT/c1 || { tail -40 $OUT/c1/build.log; exit 1; }
tail -n 3 $OUT/c1/build.log
readelf -d build-gpu/src/libbla.so | grep -E "NEEDED" > $OUT/c1/libbla_needed.txt; cat $OUT/c1/libbla_needed.txt
t0=$(date +%s)
timeout 300 ctest --test-dir build-gpu -j 12 -L cuda --output-on-failure > $OUT/c1/ctest_cuda.log 2>&1
echo "ctest cuda rc=$? in $(( $(date +%s)-t0 )) s"; tail -n 30 $OUT/c1/ctest_cuda.log
