/* Stands in for a libprotobuf other than sluice's (test/plugin/plugins/brings_library.c). */
int sluice_fake_protobuf_runtime = 1;
