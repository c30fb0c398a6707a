# The I/O port adapters of vsnoopd: AF_PACKET on a Linux interface (PacketPort) and the
# server end of qemu's stream netdev (StreamPort). Included by the datapath's CMakeLists.
add_library(vsnoop_ports STATIC
  ${CMAKE_CURRENT_LIST_DIR}/src/packet_port.cc
  ${CMAKE_CURRENT_LIST_DIR}/src/stream_port.cc
)
target_include_directories(vsnoop_ports PUBLIC ${CMAKE_CURRENT_LIST_DIR}/include)
target_link_libraries(vsnoop_ports PUBLIC vsnoop_core)
