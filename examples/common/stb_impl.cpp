// Only built when libstb is not available (see CMakeLists.txt,
// FLOWMATCH_PLOT_BUNDLED_STB): the stb implementations plot.hpp needs
// (stb_truetype, stb_image_write) plus stb_image, which the plot tests use to
// read PNGs back.  stb_easy_font is header-only and needs nothing here.
#define STB_TRUETYPE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_IMPLEMENTATION
#if __has_include(<stb_truetype.h>)
#include <stb_image.h>
#include <stb_image_write.h>
#include <stb_truetype.h>
#else
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <stb/stb_truetype.h>
#endif
