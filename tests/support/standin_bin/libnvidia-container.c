/* Stand-in for tests, not NVIDIA's library: a shared object with libnvidia-container's
 * soname, so ldconfig's trigger has a real library to index. */
const char *nvc_standin = "stand-in for tests, not NVIDIA's libnvidia-container";
