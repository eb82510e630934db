/* Symbol visibility for the tocoad-edge C ABI. The library is built with hidden visibility; only
 * functions marked TOCOAD_EDGE_API are exported. Define TOCOAD_EDGE_STATIC when linking the static
 * library on Windows. */
#ifndef TOCOAD_EDGE_EXPORT_H
#define TOCOAD_EDGE_EXPORT_H

#if defined(_WIN32) && !defined(TOCOAD_EDGE_STATIC)
#  if defined(TOCOAD_EDGE_BUILDING)
#    define TOCOAD_EDGE_API __declspec(dllexport)
#  else
#    define TOCOAD_EDGE_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define TOCOAD_EDGE_API __attribute__((visibility("default")))
#else
#  define TOCOAD_EDGE_API
#endif

#endif /* TOCOAD_EDGE_EXPORT_H */
